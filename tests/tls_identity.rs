//! Certificate identity over real TLS handshakes (semantics.md §4, §6): each
//! accepted and refused case asserts the exact outcome, for MQTT 5 and 3.1.1,
//! over TLS 1.3 and TLS 1.2.

mod support;

use support::tls::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use topicgate::certs::dev_ca::{self_signed_client, DevCa, Issued, Validity};

const SUCCESS: u8 = 0x00;
const V5_BAD_USER_NAME_OR_PASSWORD: u8 = 0x86;
const V5_NOT_AUTHORIZED: u8 = 0x87;
const V3_BAD_USER_NAME_OR_PASSWORD: u8 = 0x04;
const V3_NOT_AUTHORIZED: u8 = 0x05;

/// sensor1 and sensor2 pinned by thumbprint (sensor1 self-signed), actuator1 by
/// subject under the test CA.
struct Setup {
    pki: Pki,
    sensor1: Issued,
    sensor2: Issued,
    actuator1: Issued,
    broker: TlsBroker,
}

async fn setup() -> Setup {
    let pki = Pki::new();
    let sensor1 = self_signed_client("sensor1", Validity::days_from_now(30)).expect("sensor1");
    let sensor2 = pki.ca.issue_client("sensor2").expect("sensor2");
    let actuator1 = pki.ca.issue_client("actuator1").expect("actuator1");
    let policy = lwt_policy(
        &[
            ("sensor1", Some(pinned(&sensor1))),
            ("sensor2", Some(pinned(&sensor2))),
            (
                "actuator1",
                Some(
                    "authentication: { validationScheme: SubjectMatchesAuthenticationName }".into(),
                ),
            ),
        ],
        &[&pki.ca],
    );
    let broker = start(&policy, &pki, false).await;
    Setup {
        pki,
        sensor1,
        sensor2,
        actuator1,
        broker,
    }
}

async fn answer(
    s: &Setup,
    cert: Option<&Issued>,
    v5: bool,
    username: Option<&str>,
    tls12: bool,
) -> Answer {
    match tls_connect(s.broker.addr, client_config(&s.pki, cert, tls12)).await {
        Ok(mut stream) => connect_and_read(&mut stream, v5, "probe", username).await,
        Err(e) => Answer::NoConnack(format!("handshake: {e}")),
    }
}

#[tokio::test]
async fn pinned_and_chained_certificates_connect_with_or_without_username() {
    let s = setup().await;
    for v5 in [true, false] {
        for tls12 in [false, true] {
            assert_eq!(
                answer(&s, Some(&s.sensor1), v5, None, tls12).await,
                Answer::Connack(SUCCESS)
            );
            assert_eq!(
                answer(&s, Some(&s.sensor2), v5, Some("sensor2"), tls12).await,
                Answer::Connack(SUCCESS)
            );
            assert_eq!(
                answer(&s, Some(&s.actuator1), v5, Some("actuator1"), tls12).await,
                Answer::Connack(SUCCESS)
            );
        }
    }
}

#[tokio::test]
async fn unknown_thumbprint_is_not_authorized() {
    let s = setup().await;
    let stranger = self_signed_client("sensor1", Validity::days_from_now(30)).expect("stranger");
    assert_eq!(
        answer(&s, Some(&stranger), true, Some("sensor1"), false).await,
        Answer::Connack(V5_NOT_AUTHORIZED)
    );
    assert_eq!(
        answer(&s, Some(&stranger), false, None, false).await,
        Answer::Connack(V3_NOT_AUTHORIZED)
    );
}

#[tokio::test]
async fn certificate_of_another_client_is_a_bad_user_name() {
    let s = setup().await;
    // sensor2's own certificate and key, claiming to be sensor1.
    assert_eq!(
        answer(&s, Some(&s.sensor2), true, Some("sensor1"), false).await,
        Answer::Connack(V5_BAD_USER_NAME_OR_PASSWORD)
    );
    assert_eq!(
        answer(&s, Some(&s.sensor2), false, Some("sensor1"), false).await,
        Answer::Connack(V3_BAD_USER_NAME_OR_PASSWORD)
    );
}

#[tokio::test]
async fn expired_certificate_is_not_authorized() {
    let pki = Pki::new();
    let t = time::OffsetDateTime::now_utc();
    let expired = pki
        .ca
        .issue_client_valid(
            "actuator1",
            Validity {
                not_before: t - time::Duration::days(30),
                not_after: t - time::Duration::days(1),
            },
        )
        .expect("expired");
    let sensor = self_signed_client(
        "sensor1",
        Validity {
            not_before: t - time::Duration::days(30),
            not_after: t - time::Duration::days(1),
        },
    )
    .expect("expired self-signed");
    let policy = lwt_policy(
        &[
            ("sensor1", Some(pinned(&sensor))),
            (
                "actuator1",
                Some(
                    "authentication: { validationScheme: SubjectMatchesAuthenticationName }".into(),
                ),
            ),
        ],
        &[&pki.ca],
    );
    let broker = start(&policy, &pki, false).await;
    for (cert, user) in [(&expired, "actuator1"), (&sensor, "sensor1")] {
        let mut stream = tls_connect(broker.addr, client_config(&pki, Some(cert), false))
            .await
            .expect("handshake");
        assert_eq!(
            connect_and_read(&mut stream, true, "x", Some(user)).await,
            Answer::Connack(V5_NOT_AUTHORIZED)
        );
        let mut stream = tls_connect(broker.addr, client_config(&pki, Some(cert), false))
            .await
            .expect("handshake");
        assert_eq!(
            connect_and_read(&mut stream, false, "x", None).await,
            Answer::Connack(V3_NOT_AUTHORIZED)
        );
    }
}

#[tokio::test]
async fn certificate_from_a_ca_not_in_the_policy_is_not_authorized() {
    let s = setup().await;
    let rogue_ca = DevCa::generate().expect("rogue");
    let rogue = rogue_ca.issue_client("actuator1").expect("rogue cert");
    assert_eq!(
        answer(&s, Some(&rogue), true, Some("actuator1"), false).await,
        Answer::Connack(V5_NOT_AUTHORIZED)
    );
    assert_eq!(
        answer(&s, Some(&rogue), false, None, true).await,
        Answer::Connack(V3_NOT_AUTHORIZED)
    );
}

#[tokio::test]
async fn subject_not_matching_the_username_is_a_bad_user_name() {
    let s = setup().await;
    assert_eq!(
        answer(&s, Some(&s.actuator1), true, Some("actuator2"), false).await,
        Answer::Connack(V5_BAD_USER_NAME_OR_PASSWORD)
    );
    assert_eq!(
        answer(&s, Some(&s.actuator1), false, Some("actuator2"), false).await,
        Answer::Connack(V3_BAD_USER_NAME_OR_PASSWORD)
    );
    // A CA-issued certificate whose subject is no client at all.
    let nobody = s.pki.ca.issue_client("nobody").expect("nobody");
    assert_eq!(
        answer(&s, Some(&nobody), true, None, false).await,
        Answer::Connack(V5_NOT_AUTHORIZED)
    );
}

#[tokio::test]
async fn no_client_certificate_fails_the_handshake() {
    let s = setup().await;
    // TLS 1.3: the server's alert arrives after the client's Finished.
    let mut stream = tls_connect(s.broker.addr, client_config(&s.pki, None, false))
        .await
        .expect("client side done");
    let a = connect_and_read(&mut stream, true, "anon", None).await;
    assert_eq!(
        a,
        Answer::NoConnack("read: received fatal alert: CertificateRequired".into())
    );
    // TLS 1.2: the handshake itself fails, with the same alert.
    let e = tls_connect(s.broker.addr, client_config(&s.pki, None, true))
        .await
        .expect_err("refused");
    assert_eq!(e.to_string(), "received fatal alert: CertificateRequired");
}

#[tokio::test]
async fn plaintext_client_on_the_tls_port_gets_no_connack() {
    let s = setup().await;
    let mut tcp = TcpStream::connect(s.broker.addr).await.expect("tcp");
    tcp.write_all(&connect_packet(false, "plain", Some("sensor1")))
        .await
        .expect("write");
    let mut got = Vec::new();
    tokio::time::timeout(T, tcp.read_to_end(&mut got))
        .await
        .expect("closed in time")
        .ok();
    // One fatal TLS alert record (decode_error), never MQTT; then the connection closes.
    assert_eq!(
        got,
        [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32],
        "{got:02x?}"
    );
}

#[tokio::test]
async fn certificate_without_its_key_fails_the_handshake() {
    let s = setup().await;
    let thief = self_signed_client("thief", Validity::days_from_now(30)).expect("thief");
    for stolen in [&s.sensor1, &s.sensor2] {
        // TLS 1.3: CertificateVerify signed with the thief's key.
        let mut stream = tls_connect(s.broker.addr, forged_config(&s.pki, stolen, &thief, false))
            .await
            .expect("client side done");
        let a = connect_and_read(&mut stream, true, "thief", None).await;
        assert_eq!(
            a,
            Answer::NoConnack("read: received fatal alert: DecryptError".into())
        );
        // TLS 1.2: the client's signature is checked too.
        let e = tls_connect(s.broker.addr, forged_config(&s.pki, stolen, &thief, true))
            .await
            .expect_err("refused");
        assert_eq!(e.to_string(), "received fatal alert: DecryptError");
    }
    // Control: the same hand-built client with the right key gets in.
    let mut stream = tls_connect(
        s.broker.addr,
        forged_config(&s.pki, &s.sensor1, &s.sensor1, false),
    )
    .await
    .expect("handshake");
    assert_eq!(
        connect_and_read(&mut stream, true, "owner", None).await,
        Answer::Connack(SUCCESS)
    );
}

#[tokio::test]
async fn a_replaced_policy_decides_the_next_certificate_connect() {
    let s = setup().await;
    assert_eq!(
        answer(&s, Some(&s.sensor1), true, None, false).await,
        Answer::Connack(SUCCESS)
    );
    // The new policy pins sensor1 to another certificate: same TLS setup, new decision.
    let replacement =
        self_signed_client("sensor1", Validity::days_from_now(30)).expect("replacement");
    let policy = lwt_policy(&[("sensor1", Some(pinned(&replacement)))], &[]);
    s.broker.broker.replace_policy(compile(&policy));
    assert_eq!(
        answer(&s, Some(&s.sensor1), true, None, false).await,
        Answer::Connack(V5_NOT_AUTHORIZED)
    );
    assert_eq!(
        answer(&s, Some(&replacement), true, None, false).await,
        Answer::Connack(SUCCESS)
    );
}

#[tokio::test]
async fn a_replaced_server_certificate_serves_the_next_handshake() {
    use std::sync::Arc;
    use topicgate::broker::tls::{server_config, ServerCertificate, TlsListener};
    let old = Pki::new();
    let new = Pki::new();
    let cert = Arc::new(
        ServerCertificate::from_files(
            &old.dir.path().join("server.pem"),
            &old.dir.path().join("server.key"),
        )
        .expect("old"),
    );
    let tls = TlsListener::new(server_config(cert.clone()).expect("config"), T);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                if let Ok((mut stream, _)) = tls.handshake(tcp).await {
                    let _ = stream.write_all(b"hi").await;
                    let _ = stream.flush().await;
                }
            });
        }
    });
    let client = old.ca.issue_client("c").expect("client");
    let trusts_old = client_config(&old, Some(&client), false);
    let trusts_new = client_config(&new, Some(&client), false);
    assert!(tls_connect(addr, trusts_old.clone()).await.is_ok());
    assert!(tls_connect(addr, trusts_new.clone()).await.is_err());

    cert.replace_from_files(
        &new.dir.path().join("server.pem"),
        &new.dir.path().join("server.key"),
    )
    .expect("replace");
    assert!(tls_connect(addr, trusts_new).await.is_ok());
    let e = tls_connect(addr, trusts_old)
        .await
        .expect_err("old CA no longer matches");
    // Both development CAs share a subject name: the old one fails the signature.
    assert_eq!(e.to_string(), "invalid peer certificate: BadSignature");
}

#[tokio::test]
async fn a_certificate_that_is_not_x509_fails_the_handshake() {
    let s = setup().await;
    let junk = Issued {
        cert_pem: String::new(),
        key_pem: String::new(),
        der: vec![0x30, 0x03, 0x02, 0x01, 0x00],
    };
    let mut stream = tls_connect(
        s.broker.addr,
        forged_config(&s.pki, &junk, &s.sensor1, false),
    )
    .await
    .expect("client side done");
    let a = connect_and_read(&mut stream, true, "junk", None).await;
    assert_eq!(
        a,
        Answer::NoConnack("read: received fatal alert: BadCertificate".into())
    );
}
