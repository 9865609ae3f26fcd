//! Reloading while serving (decision 0023): the policy file on SIGHUP and, with
//! `--watch`, when the file changes; the TLS listeners' certificate and key
//! with it. Reading, compiling and verifying run off the async workers
//! (`spawn_blocking`); a policy with errors is refused with its diagnostics in
//! the log and the one in force stays, as does the certificate in force when
//! the new pair cannot be used.

use crate::broker::reload;
use crate::broker::state::Shared;
use crate::broker::tls::ServerCertificate;
use crate::compiler::load::{self, LoadError};
use crate::decisions::access::AccessPolicy;
use crate::diag::render;
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// File changes closer together than this make one reload (an editor's
/// write-rename-chmod, a `cp` in several writes).
const WATCH_DEBOUNCE: Duration = Duration::from_millis(500);

/// The server certificate of the TLS listeners and the files it is read from.
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub current: Arc<ServerCertificate>,
}

/// What a reload reads again.
pub struct Reloader {
    pub shared: Arc<Shared>,
    pub policy: PathBuf,
    pub tls: Option<TlsFiles>,
}

/// Asks for a reload. Requests that arrive while one is pending make one
/// reload: the pending one reads the files as they are when it runs.
#[derive(Clone)]
pub struct Trigger(mpsc::Sender<&'static str>);

impl Trigger {
    /// `why` names the trigger in the log (`SIGHUP`, `file change`).
    pub fn request(&self, why: &'static str) {
        let _ = self.0.try_send(why);
    }
}

/// Runs reloads one at a time, as triggers ask, until every trigger is dropped.
pub fn spawn(reloader: Reloader) -> (Trigger, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        while let Some(why) = rx.recv().await {
            reloader.run(why).await;
        }
    });
    (Trigger(tx), task)
}

impl Reloader {
    async fn run(&self, why: &'static str) {
        notify_systemd(&[sd_notify::NotifyState::Reloading]);
        info!(trigger = why, policy = %self.policy.display(), "reloading");
        self.reload_policy(why).await;
        self.reload_certificate().await;
        notify_systemd(&[sd_notify::NotifyState::Ready]);
    }

    /// Loads, compiles and verifies the policy file, and puts it in force only
    /// if it has no error.
    async fn reload_policy(&self, why: &'static str) {
        let path = self.policy.clone();
        let loaded = match tokio::task::spawn_blocking(move || load::load(&path)).await {
            Ok(r) => r,
            Err(e) => Err(LoadError::Io(format!("the policy loader stopped: {e}"))),
        };
        let stats = &self.shared.stats;
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                stats.policy_reloads_failed.inc();
                let diagnostics = match &e {
                    LoadError::Invalid(c) => render::human_all(&c.diagnostics, &c.file, false),
                    _ => String::new(),
                };
                error!(
                    trigger = why, policy = %self.policy.display(), error = %e, %diagnostics,
                    "policy reload refused: the policy in force stays"
                );
                return;
            }
        };
        if let Some(file) = &loaded.file {
            if !loaded.diagnostics.is_empty() {
                let diagnostics = render::human_all(&loaded.diagnostics, file, false);
                warn!(policy = %self.policy.display(), %diagnostics, "the reloaded policy has warnings");
            }
        }
        let policy: Arc<dyn AccessPolicy> = Arc::new(loaded.policy);
        let hash = policy.policy_hash();
        let shared = self.shared.clone();
        // Revocation blocks routing while it walks the sessions: not on a worker.
        match tokio::task::spawn_blocking(move || reload::apply(&shared, policy)).await {
            Ok(r) => info!(
                trigger = why, policy_sha256 = %hash,
                subscriptions_revoked = r.subscriptions,
                clients_no_longer_allowed = r.clients,
                delayed_wills_discarded = r.pending_wills,
                "policy reloaded"
            ),
            Err(e) => {
                stats.policy_reloads_failed.inc();
                error!(error = %e, "policy reload failed while revoking");
            }
        }
    }

    /// Reads the certificate and key again; new handshakes use them. A pair
    /// that cannot be used is refused and the one in force stays.
    async fn reload_certificate(&self) {
        let Some(tls) = &self.tls else { return };
        let (cert, key, current) = (tls.cert.clone(), tls.key.clone(), tls.current.clone());
        let done =
            tokio::task::spawn_blocking(move || current.replace_from_files(&cert, &key)).await;
        match done {
            Ok(Ok(())) => info!(cert = %tls.cert.display(), "TLS certificate reloaded"),
            Ok(Err(e)) => error!(
                cert = %tls.cert.display(), key = %tls.key.display(), error = %e,
                "TLS certificate reload refused: the certificate in force stays"
            ),
            Err(e) => error!(error = %e, "TLS certificate reload failed"),
        }
    }
}

/// Watches `files` (the policy, the certificate and key) and asks for a reload
/// when one of them changes. Watches their directories: editors and
/// deployment tools replace a file by renaming another over it, which a watch
/// on the file itself would miss. Keep the returned value: dropping it stops
/// the watch.
pub fn watch(files: &[PathBuf], trigger: Trigger) -> Result<Debouncer<RecommendedWatcher>, String> {
    let targets: Vec<PathBuf> = files.iter().map(|f| absolute(f)).collect();
    let wanted = targets.clone();
    let mut debouncer = new_debouncer(WATCH_DEBOUNCE, move |r: DebounceEventResult| match r {
        Ok(events) => {
            if events.iter().any(|e| wanted.contains(&e.path)) {
                trigger.request("file change");
            }
        }
        Err(e) => warn!(error = %e, "watching the policy files failed"),
    })
    .map_err(|e| format!("cannot watch the policy file: {e}"))?;
    let mut dirs: Vec<&Path> = targets.iter().filter_map(|t| t.parent()).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        debouncer
            .watcher()
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch `{}`: {e}", dir.display()))?;
    }
    Ok(debouncer)
}

/// `path` made absolute through its (canonical) directory, as file events name it.
fn absolute(path: &Path) -> PathBuf {
    let name = path.file_name().map(PathBuf::from).unwrap_or_default();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match dir.canonicalize() {
        Ok(d) => d.join(name),
        Err(_) => path.to_path_buf(),
    }
}

/// Tells systemd (Type=notify) about the service's state; nothing when not
/// started by systemd (`NOTIFY_SOCKET` unset).
pub fn notify_systemd(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        warn!(error = %e, "cannot notify systemd");
    }
}
