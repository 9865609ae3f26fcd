//! Many publishers and subscribers at once: every QoS 1 message arrives exactly
//! once per subscriber and nothing deadlocks.

mod support;

use mqtt_protocol_core::mqtt::packet::{Packet, Qos};
use mqtt_protocol_core::mqtt::Version;
use std::collections::HashSet;
use std::time::Duration;
use support::packets::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_reach_every_subscriber_once() {
    const PUBLISHERS: u16 = 8;
    const MESSAGES: u16 = 50;
    const SUBSCRIBERS: usize = 4;
    let b = lwt_broker().await;
    let mut subs = Vec::new();
    for i in 0..SUBSCRIBERS {
        let mut s = Raw::open(b.addr, Version::V5_0).await;
        s.send(v5_connect(&format!("sub{i}"), Some("admin")).into())
            .await;
        s.recv(T).await.expect("connack");
        s.send(v5_sub(1, &[("load/#", Qos::AtLeastOnce)]).into())
            .await;
        s.recv(T).await.expect("suback");
        subs.push(s);
    }
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let addr = b.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Raw::open(addr, Version::V5_0).await;
            c.send(v5_connect(&format!("pub{p}"), Some("admin2")).into())
                .await;
            c.recv(T).await.expect("connack");
            for m in 0..MESSAGES {
                let payload = [(p >> 8) as u8, p as u8, (m >> 8) as u8, m as u8];
                c.send(
                    v5_pub(
                        &format!("load/{p}"),
                        &payload,
                        Qos::AtLeastOnce,
                        Some(m + 1),
                    )
                    .into(),
                )
                .await;
                c.recv(T).await.expect("puback");
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
    let want = usize::from(PUBLISHERS * MESSAGES);
    for s in &mut subs {
        let mut seen = HashSet::new();
        while seen.len() < want {
            match s.recv(Duration::from_secs(5)).await {
                Ok(Packet::V5_0Publish(p)) => {
                    assert!(seen.insert(p.payload().as_slice().to_vec()), "duplicate");
                }
                Ok(_) => {}
                Err(e) => panic!("only {} of {want} arrived: {e:?}", seen.len()),
            }
        }
    }
}
