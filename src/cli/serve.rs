//! `topicgate serve POLICY|ARTIFACT [--mqtt ADDR]... [--mqtts ADDR]... [--ws ADDR]...
//! [--wss ADDR]... [--cert FILE --key FILE] [--dev] [--anonymous NAME] [--config FILE]
//! [--data DIR]`
//!
//! Boots the enforcing broker from a policy (compiled on the spot, refusing to
//! start on errors) or a compiled artifact. Listeners open only where a flag asks
//! for one; `--dev` with no listener flag opens 127.0.0.1:1883.

use super::{exit, output, serve_ops};
use crate::broker::durable::RestoreSummary;
use crate::broker::limits as fd_limits;
use crate::broker::listeners::{self, Transport};
use crate::broker::store::{Durability, Restored, Store};
use crate::broker::tls::{self, ServerCertificate, TlsListener};
use crate::broker::{Broker, BrokerConfig, IdentityMode};
use crate::compiler::load;
use crate::decisions::access::AccessPolicy;
use crate::diag::render;
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::{info, warn};

#[derive(Debug, Args)]
#[command(after_help = "Identity:\n  \
--mqtts/--wss: the client certificate names the client (`certs init` makes development\n  \
certificates; pin them with `allowedThumbprints` or list a CA in `caCertificates`).\n  \
--mqtt/--ws without --dev: username and password, checked against the client's argon2\n  \
`passwordHash`. Make one with `topicgate passwd` (or `topicgate passwd --stdin` in\n  \
scripts) and paste it under the client: `authentication: { passwordHash: \"...\" }`.\n  \
--dev: the username alone names the client (loopback only).\n\n\
More: docs/broker.md")]
pub struct ServeArgs {
    /// The policy: YAML, the DSL (`*.policy`) or a compiled artifact (`policy compile`).
    pub policy: PathBuf,
    /// Plaintext MQTT listener, `HOST:PORT` (repeatable; port 0 picks one).
    /// With --dev and no listener flag: 127.0.0.1:1883.
    #[arg(long = "mqtt", value_name = "ADDR")]
    pub mqtt: Vec<String>,
    /// MQTT over TLS listener (repeatable); clients authenticate with certificates.
    #[arg(long = "mqtts", value_name = "ADDR", requires_all = ["cert", "key"])]
    pub mqtts: Vec<String>,
    /// MQTT over WebSocket listener, subprotocol `mqtt` (repeatable).
    #[arg(long = "ws", value_name = "ADDR")]
    pub ws: Vec<String>,
    /// MQTT over WebSocket over TLS listener (repeatable); certificate identity.
    #[arg(long = "wss", value_name = "ADDR", requires_all = ["cert", "key"])]
    pub wss: Vec<String>,
    /// The server certificate chain (PEM) of the TLS listeners.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Development mode: trust the username alone (no password). Loopback only.
    #[arg(long)]
    pub dev: bool,
    /// With --dev: clients that send no username act as the policy's client NAME.
    #[arg(long, value_name = "NAME", requires = "dev")]
    pub anonymous: Option<String>,
    /// Broker limits (YAML or JSON; keys as in `BrokerConfig`, e.g. `maxConnections`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Keep persistent sessions, their queued QoS 1/2 messages, retained
    /// messages and pending wills in DIR, so that they survive a crash
    /// (created if new; see `durability` in --config). Without it, all state
    /// is in memory only.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub ops: serve_ops::OpsArgs,
}

pub fn run(args: ServeArgs) -> u8 {
    serve_ops::init_logging(args.ops.log_format);

    let loaded = match load::load(&args.policy) {
        Ok(l) => l,
        Err(e) => return output::report_load_error(&e),
    };
    if let Some(file) = &loaded.file {
        if !loaded.diagnostics.is_empty() {
            eprint!(
                "{}",
                render::human_all(&loaded.diagnostics, file, output::color())
            );
        }
    }
    let settings = loaded.policy.policy.settings.clone();
    let namespace = loaded
        .policy
        .policy
        .namespace
        .as_ref()
        .map(|n| n.value.clone());
    let policy: Arc<dyn AccessPolicy> = Arc::new(loaded.policy);

    let config = match &args.config {
        Some(path) => match read_config(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::ERROR;
            }
        },
        None => BrokerConfig::default(),
    }
    .capped_by(&settings);

    if let Some(fds) = fd_limits::raise_open_file_limit() {
        let wanted = config.max_connections as u64 + fd_limits::RESERVED_DESCRIPTORS;
        if fds < wanted {
            eprintln!(
                "warning: the open-file limit is {fds}, below maxConnections ({}) plus {} for the broker \
                 itself: connections past about {} will fail at accept\n  help: raise it (`ulimit -n`, \
                 LimitNOFILE= in a systemd unit) or lower maxConnections",
                config.max_connections,
                fd_limits::RESERVED_DESCRIPTORS,
                fds.saturating_sub(fd_limits::RESERVED_DESCRIPTORS)
            );
        }
    }

    let no_listener =
        args.mqtt.is_empty() && args.mqtts.is_empty() && args.ws.is_empty() && args.wss.is_empty();
    let mqtt_specs = if no_listener && args.dev {
        vec!["127.0.0.1:1883".to_string()]
    } else {
        args.mqtt.clone()
    };
    if no_listener && !args.dev {
        eprintln!(
            "error: no listener: give --mqtts ADDR (with --cert and --key), --wss ADDR, --mqtt ADDR or --ws ADDR, \
             or --dev for a development listener on 127.0.0.1:1883"
        );
        return exit::ERROR;
    }
    if (args.cert.is_some() || args.key.is_some()) && args.mqtts.is_empty() && args.wss.is_empty() {
        eprintln!("error: --cert and --key are for TLS listeners: add --mqtts ADDR or --wss ADDR");
        return exit::ERROR;
    }
    // (flag, specs, plaintext?) for every listener flag.
    let groups: [(&str, &[String], bool); 4] = [
        ("--mqtt", &mqtt_specs, true),
        ("--ws", &args.ws, true),
        ("--mqtts", &args.mqtts, false),
        ("--wss", &args.wss, false),
    ];
    let mut plans: Vec<(&str, SocketAddr)> = Vec::new();
    for (flag, specs, _) in groups {
        for s in specs {
            match resolve(s) {
                Ok(a) => plans.extend(a.into_iter().map(|a| (flag, a))),
                Err(e) => {
                    eprintln!("error: {flag} `{s}`: {e}");
                    return exit::ERROR;
                }
            }
        }
    }
    // Identity on plaintext listeners comes from the identity mode; TLS listeners
    // take it from the client certificate.
    let addrs: Vec<SocketAddr> = plans
        .iter()
        .filter(|(flag, _)| *flag == "--mqtt" || *flag == "--ws")
        .map(|(_, a)| *a)
        .collect();

    let tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => match tls_listener(cert, key, &config) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::ERROR;
            }
        },
        _ => None,
    };

    let identity = if addrs.is_empty() {
        // Only TLS listeners: no plaintext identity is ever used.
        IdentityMode::Password
    } else if args.dev {
        if let Some(a) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            eprintln!(
                "error: --dev trusts the username alone, so it only binds loopback addresses; `{a}` is not one"
            );
            return exit::ERROR;
        }
        if let Some(name) = &args.anonymous {
            if policy.lookup_client(name).is_none() {
                eprintln!("error: --anonymous `{name}` is not a client of the policy");
                return exit::ERROR;
            }
        }
        eprintln!("================================================================");
        eprintln!(" DEVELOPMENT MODE: clients are trusted by username alone.");
        if let Some(name) = &args.anonymous {
            eprintln!(" Clients without a username act as policy client `{name}`.");
        }
        eprintln!(" Loopback only. Do not use in production.");
        eprintln!("================================================================");
        IdentityMode::Dev {
            anonymous: args.anonymous.clone(),
        }
    } else {
        if !policy.has_password_clients() {
            eprintln!(
                "error: refusing to serve plaintext MQTT: no client of the policy has a `passwordHash`, \
                 so nobody could authenticate.\n  help: `topicgate passwd` prints an argon2 \
                 `passwordHash: ...` line; paste it under the client's `authentication:`, or use \
                 `--dev` on loopback to trust usernames while developing"
            );
            return exit::ERROR;
        }
        IdentityMode::Password
    };

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit::ERROR;
        }
    };
    let mut listeners = Vec::new();
    for (flag, addr) in plans {
        let transport = match (flag, &tls) {
            ("--mqtt", _) => Transport::Mqtt,
            ("--ws", _) => Transport::Ws,
            ("--mqtts", Some(t)) => Transport::Mqtts(t.clone()),
            ("--wss", Some(t)) => Transport::Wss(t.clone()),
            _ => {
                eprintln!("error: {flag} needs --cert FILE and --key FILE");
                return exit::ERROR;
            }
        };
        listeners.push((addr, transport));
    }
    // Opened before any listener: a store that cannot be used stops the start.
    let store = match &args.data {
        Some(dir) => match Store::open(dir, config.store_durability()) {
            Ok(opened) => Some(opened),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::ERROR;
            }
        },
        None => None,
    };
    let ops = (args.ops, namespace);
    rt.block_on(serve(policy, config, identity, listeners, ops, store))
}

/// Says where the broker's state lives, so an operator knows what a crash loses.
fn log_durability(store: Option<&Store>, summary: Option<&RestoreSummary>) {
    let Some(store) = store else {
        warn!("no --data: sessions, queued messages, retained messages and wills are in memory only and are lost when the broker stops");
        return;
    };
    let dir = store.dir().display().to_string();
    match store.durability() {
        Durability::Sync => info!(
            data = %dir, durability = "sync",
            "durable state: acknowledgements wait until the message is fsynced (group commit)"
        ),
        Durability::Relaxed { window } => warn!(
            data = %dir, durability = "relaxed", window_ms = window.as_millis() as u64,
            "durable state, relaxed: acknowledged messages of the last window can be lost in a crash"
        ),
    }
    if let Some(s) = summary {
        info!(
            sessions = s.sessions,
            messages = s.messages,
            retained = s.retained,
            sessions_dropped = s.sessions_dropped,
            sessions_expired = s.sessions_expired,
            subscriptions_revoked = s.subscriptions_revoked,
            messages_dropped = s.messages_dropped,
            wills_due = s.wills_due,
            "state restored from the store"
        );
    }
}

/// The TLS handshake settings of `--mqtts` and `--wss`, from the server's files.
fn tls_listener(cert: &Path, key: &Path, config: &BrokerConfig) -> Result<TlsListener, String> {
    let server_cert = Arc::new(ServerCertificate::from_files(cert, key)?);
    let server_config = tls::server_config(server_cert)?;
    Ok(TlsListener::new(server_config, config.connect_timeout))
}

async fn serve(
    policy: Arc<dyn AccessPolicy>,
    config: BrokerConfig,
    identity: IdentityMode,
    listeners: Vec<(SocketAddr, Transport)>,
    (ops, namespace): (serve_ops::OpsArgs, Option<String>),
    store: Option<(Store, Restored)>,
) -> u8 {
    let signals = StopSignals::install();
    let hash = policy.policy_hash();
    info!(policy_sha256 = %hash, "policy loaded");
    let broker = match store {
        Some((store, restored)) => {
            let (broker, summary) = Broker::with_store(policy, config, identity, store, restored);
            log_durability(broker.shared().store.as_ref(), Some(&summary));
            broker
        }
        None => {
            log_durability(None, None);
            Broker::new(policy, config, identity)
        }
    };
    let ops = match serve_ops::start(&ops, &broker, namespace.as_deref()).await {
        Ok(ops) => ops,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    for (addr, transport) in listeners {
        let scheme = transport.scheme();
        match listeners::listen(&broker, addr, transport).await {
            Ok((local, _task)) => {
                info!(listener = %format!("{scheme}://{local}"), "listening");
                // Scripts read this line to learn an ephemeral port.
                println!("listening on {scheme}://{local}");
            }
            Err(e) => {
                eprintln!("error: cannot listen on {addr}: {e}");
                broker.shutdown().await;
                return exit::ERROR;
            }
        }
    }
    ops.listening();
    signals.wait().await;
    info!("shutting down");
    ops.stopping();
    broker.shutdown().await;
    if let Some(store) = &broker.shared().store {
        // What the sessions' last changes wrote, fsynced even when relaxed.
        if let Err(e) = store.flush().wait().await {
            warn!(error = %e, "the broker store could not be synced at shutdown");
        }
    }
    ops.stopped(&broker).await;
    exit::OK
}

/// SIGINT/SIGTERM, registered before any listener is announced so that a signal
/// sent right after the "listening" line is never the default (fatal) action.
/// SIGHUP is caught too: its default action would kill the broker (and every
/// client with it); until reload on SIGHUP exists it is logged and ignored.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let (Some(mut term), Some(mut int)) = (self.term, self.int) {
            let mut hup = self.hup;
            loop {
                tokio::select! {
                    _ = int.recv() => return,
                    _ = term.recv() => return,
                    Some(()) = async { hup.as_mut()?.recv().await } => {
                        warn!("SIGHUP received and ignored: reloading on SIGHUP is not supported yet");
                    }
                }
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn resolve(spec: &str) -> Result<Vec<SocketAddr>, String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = spec.to_socket_addrs().map_err(|e| e.to_string())?.collect();
    if addrs.is_empty() {
        return Err("resolves to no address".into());
    }
    Ok(addrs)
}

fn read_config(path: &Path) -> Result<BrokerConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    serde_saphyr::from_str(&text).map_err(|e| format!("`{}`: {e}", path.display()))
}
