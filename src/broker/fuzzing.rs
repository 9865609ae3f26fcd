//! Feeding arbitrary bytes to one connection, shared by the proptest (CI) and the
//! cargo-fuzz target (`fuzz/`), so both exercise exactly the same path.
//! The structure-aware fuzzer (valid sessions mutated, several TCP connections,
//! health and memory checks) is `tests/broker_fuzz.rs`; see docs/reliability.md.

use super::{connection, Broker, BrokerConfig, IdentityMode};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A policy in which client `admin` may publish and subscribe everything.
pub const POLICY: &str = r##"
clients:
  admin: { attributes: { type: admin } }
clientGroups:
  admins: { query: "attributes.type = 'admin'" }
topicSpaces:
  everything: { topicTemplates: [ "#" ] }
permissionBindings:
  admins-pub: { clientGroup: admins, topicSpace: everything, permission: publisher }
  admins-sub: { clientGroup: admins, topicSpace: everything, permission: subscriber }
"##;

/// MQTT 5 CONNECT: client ID "f", username "admin", keep-alive 0.
pub const CONNECT_V5: &[u8] = &[
    0x10, 0x15, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x82, 0x00, 0x00, 0x00, 0x00, 0x01, b'f',
    0x00, 0x05, b'a', b'd', b'm', b'i', b'n',
];
/// MQTT 3.1.1 CONNECT: client ID "f", username "admin", keep-alive 0.
pub const CONNECT_V3: &[u8] = &[
    0x10, 0x14, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x82, 0x00, 0x00, 0x00, 0x01, b'f', 0x00,
    0x05, b'a', b'd', b'm', b'i', b'n',
];

/// A broker with small limits over [`POLICY`], in dev mode.
// The panic cannot fire: `POLICY` is a constant that every run of the
// proptest (tests/broker_proptest.rs) compiles through this function.
#[allow(clippy::panic)]
pub fn broker() -> Broker {
    let c = crate::compiler::compile_text("fuzz.yaml", POLICY, None);
    let policy = match crate::compiler::load::from_compilation(c) {
        Ok(l) => l.policy,
        Err(e) => panic!("fuzz policy does not compile: {e:?}"),
    };
    let cfg = BrokerConfig {
        connect_timeout: Duration::from_millis(200),
        max_packet_size: 4096,
        ..Default::default()
    };
    Broker::new(
        Arc::new(policy),
        cfg,
        IdentityMode::Dev {
            anonymous: Some("admin".into()),
        },
    )
}

/// Writes `input` into a fresh connection, closes the write side, drains the
/// replies, and returns an error when the connection does not end by itself.
/// A panic in the connection task is re-raised.
pub async fn feed(broker: &Broker, input: &[u8]) -> Result<(), String> {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(connection::run(
        broker.shared().clone(),
        server,
        "fuzz".into(),
        0,
    ));
    let _ = client.write_all(input).await;
    let _ = client.shutdown().await;
    let mut sink = vec![0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), client.read(&mut sink)).await
    {
        if n == 0 {
            break;
        }
    }
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Err(_) => Err("connection wedged".into()),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(())) => Ok(()),
    }
}

/// One fuzz input: the first byte picks a prefix (none, v5 CONNECT, 3.1.1 CONNECT).
/// A harness: a finding is reported by panicking, which is how cargo-fuzz and
/// the proptest learn of it; so is a runtime that cannot be built (nothing
/// could be fuzzed).
#[allow(clippy::panic)]
pub fn fuzz_one(data: &[u8]) {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let rt = RT.get_or_init(|| {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("tokio runtime: {e}"),
        }
    });
    let mut input = match pick % 3 {
        0 => Vec::new(),
        1 => CONNECT_V5.to_vec(),
        _ => CONNECT_V3.to_vec(),
    };
    input.extend_from_slice(rest);
    rt.block_on(async {
        let b = broker();
        if let Err(e) = feed(&b, &input).await {
            panic!("{e} on {input:02x?}");
        }
    });
}
