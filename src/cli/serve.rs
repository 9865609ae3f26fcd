//! `topicgate serve [POLICY|ARTIFACT] [--mqtt ADDR]... [--mqtts ADDR]... [--ws ADDR]...
//! [--wss ADDR]... [--cert FILE --key FILE] [--dev] [--anonymous NAME] [--watch]
//! [--config FILE] [--print-config]
//! [--data DIR]`
//!
//! Boots the enforcing broker from a policy (compiled on the spot, refusing to
//! start on errors) or a compiled artifact. Listeners open only where a flag asks
//! for one; `--dev` with no listener flag opens 127.0.0.1:1883. Every setting
//! may also come from `TOPICGATE_*` variables and `--config FILE`
//! (`serve_config`); SIGHUP and `--watch` reload the policy (`serve_reload`).

use super::serve_config::{self, Settings};
use super::serve_reload::{self, Reloader, TlsFiles, Trigger};
use super::{exit, output, serve_ops};
use crate::broker::durable::RestoreSummary;
use crate::broker::limits as fd_limits;
use crate::broker::listeners::{self, Transport};
use crate::broker::store::{Durability, Restored, Store};
use crate::broker::tls::{self, ServerCertificate, TlsError, TlsListener};
use crate::broker::{Broker, BrokerConfig, IdentityMode};
use crate::decisions::access::AccessPolicy;
use crate::diag::render;
use crate::pipeline;
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
    /// May come from TOPICGATE_POLICY or `policy:` in --config instead.
    #[arg(env = "TOPICGATE_POLICY")]
    pub policy: Option<PathBuf>,
    /// Plaintext MQTT listener, `HOST:PORT` (repeatable; port 0 picks one).
    /// With --dev and no listener flag: 127.0.0.1:1883.
    #[arg(
        long = "mqtt",
        value_name = "ADDR",
        env = "TOPICGATE_MQTT",
        value_delimiter = ','
    )]
    pub mqtt: Vec<String>,
    /// MQTT over TLS listener (repeatable); clients authenticate with certificates.
    #[arg(
        long = "mqtts",
        value_name = "ADDR",
        env = "TOPICGATE_MQTTS",
        value_delimiter = ','
    )]
    pub mqtts: Vec<String>,
    /// MQTT over WebSocket listener, subprotocol `mqtt` (repeatable).
    #[arg(
        long = "ws",
        value_name = "ADDR",
        env = "TOPICGATE_WS",
        value_delimiter = ','
    )]
    pub ws: Vec<String>,
    /// MQTT over WebSocket over TLS listener (repeatable); certificate identity.
    #[arg(
        long = "wss",
        value_name = "ADDR",
        env = "TOPICGATE_WSS",
        value_delimiter = ','
    )]
    pub wss: Vec<String>,
    /// The server certificate chain (PEM) of the TLS listeners (read again on reload).
    #[arg(long, value_name = "FILE", env = "TOPICGATE_CERT")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --cert (read again on reload).
    #[arg(long, value_name = "FILE", env = "TOPICGATE_KEY")]
    pub key: Option<PathBuf>,
    /// Development mode: trust the username alone (no password). Loopback only.
    #[arg(long, env = "TOPICGATE_DEV", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub dev: Option<bool>,
    /// With --dev: clients that send no username act as the policy's client NAME.
    #[arg(long, value_name = "NAME", env = "TOPICGATE_ANONYMOUS")]
    pub anonymous: Option<String>,
    /// Reload the policy (and the TLS certificate and key) when their files change.
    /// SIGHUP reloads them too, with or without --watch.
    #[arg(long, env = "TOPICGATE_WATCH", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub watch: Option<bool>,
    /// Configuration file (YAML or JSON): any serve setting (`policy`, `mqtt`,
    /// `cert`, `dev`, `metrics`, `logFormat`, ...) and the broker limits
    /// (`maxConnections`, ...). Flags win over TOPICGATE_* variables, which win over it.
    #[arg(long, value_name = "FILE", env = "TOPICGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Keep persistent sessions, their queued QoS 1/2 messages, retained
    /// messages and pending wills in DIR, so that they survive a crash
    /// (created if new; see `durability` in --config). Without it, all state
    /// is in memory only.
    #[arg(long, value_name = "DIR", env = "TOPICGATE_DATA")]
    pub data: Option<PathBuf>,
    /// Print the effective configuration (YAML, readable by --config) and exit.
    #[arg(long = "print-config")]
    pub print_config: bool,
    #[command(flatten)]
    pub ops: serve_ops::OpsArgs,
}

pub fn run(args: ServeArgs) -> u8 {
    let settings = match serve_config::resolve(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    if args.print_config {
        return match settings.to_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                exit::OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                exit::ERROR
            }
        };
    }
    serve_ops::init_logging(settings.log_format);
    let policy_path = match settings.policy_path() {
        Ok(p) => p.to_path_buf(),
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    let ops = match ops_args(&settings) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    let args = settings;

    let loaded = match pipeline::load(&policy_path) {
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

    let config = args.limits.clone().capped_by(&settings);

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
    if args.anonymous.is_some() && !args.dev {
        eprintln!("error: --anonymous NAME is for development mode: add --dev");
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

    let (tls, tls_files) = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => match tls_listener(cert, key, &config) {
            Ok((listener, current)) => (
                Some(listener),
                Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    current,
                }),
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::ERROR;
            }
        },
        (None, None) => (None, None),
        _ => {
            eprintln!("error: --cert FILE and --key FILE go together");
            return exit::ERROR;
        }
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
    let ops = (ops, namespace);
    let reload = ReloadPlan {
        policy: policy_path,
        tls: tls_files,
        watch: args.watch,
    };
    rt.block_on(serve(
        policy, config, identity, listeners, ops, reload, store,
    ))
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
            in_flight = s.in_flight,
            retained = s.retained,
            sessions_dropped = s.sessions_dropped,
            sessions_expired = s.sessions_expired,
            subscriptions_revoked = s.subscriptions_revoked,
            messages_dropped = s.messages_dropped,
            wills_due = s.wills_due,
            wills_of_open_connections = s.open_wills,
            "state restored from the store"
        );
    }
}

/// The operations settings as `serve_ops` takes them.
fn ops_args(s: &Settings) -> Result<serve_ops::OpsArgs, String> {
    let events_webhook = match &s.events_webhook {
        Some(url) => Some(
            url.parse::<hyper::Uri>()
                .map_err(|e| format!("events webhook `{url}`: {e}"))?,
        ),
        None => None,
    };
    Ok(serve_ops::OpsArgs {
        metrics: s.metrics,
        events_file: s.events_file.clone(),
        events_webhook,
        log_format: Some(s.log_format),
    })
}

/// What a reload reads again, and whether file changes trigger one.
struct ReloadPlan {
    policy: PathBuf,
    tls: Option<TlsFiles>,
    watch: bool,
}

/// The TLS handshake settings of `--mqtts` and `--wss`, from the server's
/// files, and the certificate a reload replaces.
fn tls_listener(
    cert: &Path,
    key: &Path,
    config: &BrokerConfig,
) -> Result<(TlsListener, Arc<ServerCertificate>), TlsError> {
    let server_cert = Arc::new(ServerCertificate::from_files(cert, key)?);
    let server_config = tls::server_config(server_cert.clone())?;
    Ok((
        TlsListener::new(server_config, config.connect_timeout),
        server_cert,
    ))
}

async fn serve(
    policy: Arc<dyn AccessPolicy>,
    config: BrokerConfig,
    identity: IdentityMode,
    listeners: Vec<(SocketAddr, Transport)>,
    (ops, namespace): (serve_ops::OpsArgs, Option<String>),
    reload: ReloadPlan,
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
    let mut watched = vec![reload.policy.clone()];
    if let Some(t) = &reload.tls {
        watched.extend([t.cert.clone(), t.key.clone()]);
    }
    let (trigger, _reloads) = serve_reload::spawn(Reloader {
        shared: broker.shared().clone(),
        policy: reload.policy,
        tls: reload.tls,
    });
    // Kept until the broker stops: dropping it ends the watch.
    let _watch = if reload.watch {
        match serve_reload::watch(&watched, trigger.clone()) {
            Ok(w) => {
                info!(files = ?watched, "watching for changes");
                Some(w)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return exit::ERROR;
            }
        }
    } else {
        None
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
    serve_reload::notify_systemd(&[sd_notify::NotifyState::Ready]);
    signals.wait(&trigger).await;
    info!("shutting down");
    serve_reload::notify_systemd(&[sd_notify::NotifyState::Stopping]);
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
/// SIGHUP asks for a reload (its default action would kill the broker).
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

    /// Until SIGINT or SIGTERM; each SIGHUP meanwhile asks `reload` for a reload.
    async fn wait(self, reload: &Trigger) {
        #[cfg(unix)]
        if let (Some(mut term), Some(mut int)) = (self.term, self.int) {
            let mut hup = self.hup;
            loop {
                tokio::select! {
                    _ = int.recv() => return,
                    _ = term.recv() => return,
                    Some(()) = async { hup.as_mut()?.recv().await } => reload.request("SIGHUP"),
                }
            }
        }
        #[cfg(not(unix))]
        let _ = reload;
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
