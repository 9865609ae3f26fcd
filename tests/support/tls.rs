//! Shared helpers for the TLS tests: certificates generated per test, a broker
//! with a `--mqtts` (or `--wss`) listener on an ephemeral loopback port, rustls
//! clients, and raw CONNECT/CONNACK bytes to assert exact reason codes.
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme, SupportedProtocolVersion};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use topicgate::broker::listeners::{self, Transport};
use topicgate::broker::tls::{self, ServerCertificate, TlsListener};
use topicgate::broker::{Broker, BrokerConfig, IdentityMode};
use topicgate::certs::dev_ca::{DevCa, Issued};
use topicgate::certs::thumbprint;

pub use super::log;
pub use super::policy::compile;
pub use super::wait::T;

/// rumqttc is built without a default provider: install `ring` once per process.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A development CA with a server certificate for localhost.
pub struct Pki {
    pub ca: DevCa,
    pub server: Issued,
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let ca = DevCa::generate().expect("ca");
        let server = ca.issue_server(&[]).expect("server cert");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("server.pem"), &server.cert_pem).expect("write");
        std::fs::write(dir.path().join("server.key"), &server.key_pem).expect("write");
        Pki { ca, server, dir }
    }

    pub fn tls_listener(&self) -> TlsListener {
        let cert = ServerCertificate::from_files(
            &self.dir.path().join("server.pem"),
            &self.dir.path().join("server.key"),
        )
        .expect("server certificate");
        let config = tls::server_config(Arc::new(cert)).expect("server config");
        TlsListener::new(config, T)
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.ca.certificate_der().to_vec())
    }
}

/// The `authentication` line of a client pinned to `issued`'s thumbprint.
pub fn pinned(issued: &Issued) -> String {
    format!(
        "authentication: {{ validationScheme: ThumbprintMatch, allowedThumbprints: [ \"{}\" ] }}",
        thumbprint(&issued.der)
    )
}

/// The seed scenario's policy, with one `authentication` line per client
/// (`None`: the client has no authentication) and optional CA certificates.
pub fn lwt_policy(auth: &[(&str, Option<String>)], cas: &[&DevCa]) -> String {
    let mut y = String::from("clients:\n");
    for (name, a) in auth {
        let kind = if name.starts_with("sensor") {
            "sensor"
        } else {
            "actuator"
        };
        y.push_str(&format!("  {name}:\n    attributes: {{ type: {kind} }}\n"));
        if let Some(a) = a {
            y.push_str(&format!("    {a}\n"));
        }
    }
    y.push_str(
        "clientGroups:\n  sensors: { query: \"attributes.type = 'sensor'\" }\n  actuators: { query: \"attributes.type = 'actuator'\" }\n\
         topicSpaces:\n  lwt-pub: { topicTemplates: [ \"clients/${client.authenticationName}/status\" ] }\n  lwt-sub: { topicTemplates: [ \"clients/+/status\" ] }\n\
         permissionBindings:\n  sensors-pub: { clientGroup: sensors, topicSpace: lwt-pub, permission: publisher }\n  actuators-sub: { clientGroup: actuators, topicSpace: lwt-sub, permission: subscriber }\n",
    );
    if !cas.is_empty() {
        y.push_str("caCertificates:\n");
        for (i, ca) in cas.iter().enumerate() {
            let pem = ca.certificate_pem().trim_end().replace('\n', "\n      ");
            y.push_str(&format!(
                "  ca{i}:\n    encodedCertificate: |\n      {pem}\n"
            ));
        }
    }
    y
}

pub struct TlsBroker {
    pub broker: Broker,
    pub addr: SocketAddr,
}

/// A broker serving `policy` on a TLS listener (`--mqtts`, or `--wss` when `ws`).
pub async fn start(policy: &str, pki: &Pki, ws: bool) -> TlsBroker {
    log();
    install_provider();
    let broker = Broker::new(
        compile(policy),
        BrokerConfig::default(),
        IdentityMode::Password,
    );
    let tls = pki.tls_listener();
    let transport = if ws {
        Transport::Wss(tls)
    } else {
        Transport::Mqtts(tls)
    };
    let (addr, _task) = listeners::listen(&broker, "127.0.0.1:0".parse().expect("addr"), transport)
        .await
        .expect("bind");
    TlsBroker { broker, addr }
}

static TLS12_ONLY: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

pub fn versions(tls12: bool) -> &'static [&'static SupportedProtocolVersion] {
    if tls12 {
        &TLS12_ONLY
    } else {
        &TLS13_ONLY
    }
}

fn roots(pki: &Pki) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der()).expect("root");
    roots
}

fn builder(
    pki: &Pki,
    tls12: bool,
) -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions(tls12))
        .expect("versions")
        .with_root_certificates(roots(pki))
}

/// A client that trusts the test CA and presents `client` (or no certificate).
pub fn client_config(pki: &Pki, client: Option<&Issued>, tls12: bool) -> Arc<ClientConfig> {
    let b = builder(pki, tls12);
    Arc::new(match client {
        Some(c) => b
            .with_client_auth_cert(
                vec![CertificateDer::from(c.der.clone())],
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).expect("key"),
            )
            .expect("client auth"),
        None => b.with_no_client_auth(),
    })
}

/// A client that presents `stolen`'s certificate but signs the handshake with
/// `own`'s private key: it has the certificate, not its key.
pub fn forged_config(pki: &Pki, stolen: &Issued, own: &Issued, tls12: bool) -> Arc<ClientConfig> {
    let provider = rustls::crypto::ring::default_provider();
    let key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::from_pem_slice(own.key_pem.as_bytes()).expect("key"))
        .expect("signing key");
    let forged = CertifiedKey::new(vec![CertificateDer::from(stolen.der.clone())], key);
    Arc::new(builder(pki, tls12).with_client_cert_resolver(Arc::new(Present(Arc::new(forged)))))
}

#[derive(Debug)]
struct Present(Arc<CertifiedKey>);

impl ResolvesClientCert for Present {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    TlsConnector::from(config).connect(name, tcp).await
}

/// A CONNECT packet: MQTT 5 or 3.1.1, clean start, keep-alive 60.
pub fn connect_packet(v5: bool, client_id: &str, username: Option<&str>) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', if v5 { 5 } else { 4 }];
    body.push(0x02 | if username.is_some() { 0x80 } else { 0 });
    body.extend([0, 60]);
    if v5 {
        body.push(0); // no properties
    }
    for s in std::iter::once(client_id).chain(username) {
        body.extend((s.len() as u16).to_be_bytes());
        body.extend(s.as_bytes());
    }
    let mut p = vec![0x10];
    topicgate::broker::encode::push_remaining_length(&mut p, body.len());
    p.extend(body);
    p
}

/// What the server answered to a CONNECT.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// CONNACK with this reason / return code.
    Connack(u8),
    /// The connection ended (or failed) without a CONNACK: the text says how.
    NoConnack(String),
}

/// Sends CONNECT and reads the CONNACK's code.
pub async fn connect_and_read<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    v5: bool,
    client_id: &str,
    username: Option<&str>,
) -> Answer {
    if let Err(e) = stream
        .write_all(&connect_packet(v5, client_id, username))
        .await
    {
        return Answer::NoConnack(format!("write: {e}"));
    }
    let mut buf = [0u8; 4];
    match tokio::time::timeout(T, stream.read_exact(&mut buf)).await {
        Err(_) => Answer::NoConnack("timeout".into()),
        Ok(Err(e)) => Answer::NoConnack(format!("read: {e}")),
        Ok(Ok(_)) if buf[0] == 0x20 => Answer::Connack(buf[3]),
        Ok(Ok(_)) => Answer::NoConnack(format!("unexpected bytes {buf:02x?}")),
    }
}
