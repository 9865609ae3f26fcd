//! Third-party MQTT peers of the interop tests (Mosquitto, mosquitto-clients,
//! paho-mqtt, MQTT.js), and the test harness those targets share.
//!
//! The interop targets run with `harness = false` through [`main`] (libtest-mimic),
//! so that a test whose peer is missing shows as `ignored, needs ...` in the normal
//! `cargo test` summary instead of passing without running. With `CI` set, a
//! missing peer is a failure that names it. `scripts/test-peers.sh` installs them.

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// How every message about a missing peer ends.
const SETUP: &str = "scripts/test-peers.sh installs every peer";

/// A program an interop test talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The Mosquitto broker (`mosquitto`).
    Mosquitto,
    /// `mosquitto_pub` and `mosquitto_sub`.
    MosquittoClients,
    /// Python with paho-mqtt 2.
    Paho,
    /// Node.js with MQTT.js installed in `tests/interop/js`.
    MqttJs,
}

impl Peer {
    fn what(self) -> &'static str {
        match self {
            Peer::Mosquitto => "the mosquitto broker",
            Peer::MosquittoClients => "mosquitto_pub/mosquitto_sub",
            Peer::Paho => "paho-mqtt 2 for Python",
            Peer::MqttJs => "MQTT.js (node and tests/interop/js/node_modules)",
        }
    }

    fn install(self) -> &'static str {
        match self {
            Peer::Mosquitto => "apt-get install mosquitto",
            Peer::MosquittoClients => "apt-get install mosquitto-clients",
            Peer::Paho => {
                "python3 -m venv .venv-peers && .venv-peers/bin/pip install 'paho-mqtt>=2'"
            }
            Peer::MqttJs => "apt-get install nodejs npm; (cd tests/interop/js && npm ci)",
        }
    }

    fn present(self) -> bool {
        match self {
            Peer::Mosquitto => mosquitto().is_some(),
            Peer::MosquittoClients => {
                on_path("mosquitto_pub").is_some() && on_path("mosquitto_sub").is_some()
            }
            Peer::Paho => Command::new(python())
                .args([
                    "-c",
                    "import paho.mqtt.client as m; m.CallbackAPIVersion.VERSION2",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            Peer::MqttJs => {
                on_path("node").is_some()
                    && js_dir().join("node_modules/mqtt/package.json").is_file()
            }
        }
    }
}

/// An executable `name` in a directory of `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The mosquitto broker: on `PATH`, or in the `sbin` directories Debian installs it
/// to, which a non-root user's `PATH` often lacks.
pub fn mosquitto() -> Option<PathBuf> {
    on_path("mosquitto").or_else(|| {
        ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
            .iter()
            .map(PathBuf::from)
            .find(|p| is_executable(p))
    })
}

/// The Python that has paho-mqtt: `TOPICGATE_PYTHON` if set, else the virtual
/// environment `scripts/test-peers.sh` creates (`.venv-peers/`), else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TOPICGATE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-peers/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Where MQTT.js and the scripts that drive it live.
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/js")
}

/// One interop test: the peers it needs and its body (which panics on failure).
pub struct Interop {
    pub name: &'static str,
    pub needs: &'static [Peer],
    pub run: fn(),
}

/// What is missing for `needs`, as one line with the install commands; `None`
/// when every peer is there.
pub fn missing(needs: &[Peer]) -> Option<String> {
    let absent: Vec<Peer> = needs.iter().copied().filter(|p| !p.present()).collect();
    if absent.is_empty() {
        return None;
    }
    let what: Vec<&str> = absent.iter().map(|p| p.what()).collect();
    let how: Vec<&str> = absent.iter().map(|p| p.install()).collect();
    Some(format!(
        "needs {} (install: {}; {SETUP})",
        what.join(", "),
        how.join("; ")
    ))
}

/// The harness of an interop target: runs `tests` as libtest does, reporting a test
/// whose peers are missing as ignored with the reason, or, when `CI` is set, as a
/// failure naming them.
pub fn main(tests: &[Interop]) -> ExitCode {
    let args = Arguments::from_args();
    let in_ci = std::env::var_os("CI").is_some();
    let trials = tests
        .iter()
        .map(|t| {
            let (needs, run) = (t.needs, t.run);
            Trial::ignorable_test(t.name, move || match missing(needs) {
                Some(why) if in_ci => Err(Failed::from(format!("CI is set and this test {why}"))),
                Some(why) => Ok(Completion::ignored_with(why)),
                None => {
                    run();
                    Ok(Completion::Completed)
                }
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
