//! Starting a real Mosquitto for integration tests. Mosquitto is a Debian package
//! (`apt-get install mosquitto`); the interop harness ([`super::peers`]) reports a
//! test that needs it as ignored, or failed under CI, when it is missing.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The mosquitto binary. Only called by tests whose harness checked that it exists.
pub fn binary() -> PathBuf {
    super::peers::mosquitto().expect("the harness checked that mosquitto is installed")
}

/// A free loopback port (bound and released; Mosquitto binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running Mosquitto, killed on drop.
pub struct Mosquitto {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Mosquitto {
    /// Starts `bin` with a config of `listener PORT 127.0.0.1` plus `extra` lines.
    ///
    /// The port is picked free and released, so another process may take it
    /// before Mosquitto binds it; then Mosquitto exits and something else answers
    /// on the port. A start counts only when Mosquitto is still running after the
    /// port answers, and is retried on a new port otherwise.
    pub fn start(bin: &Path, dir: &Path, extra: &str) -> Mosquitto {
        for _ in 0..5 {
            if let Some(m) = Self::try_start(bin, dir, extra) {
                return m;
            }
        }
        panic!("mosquitto did not start on a free port in 5 attempts");
    }

    fn try_start(bin: &Path, dir: &Path, extra: &str) -> Option<Mosquitto> {
        let port = free_port();
        let conf = dir.join("mosquitto-test.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\n{extra}\n"))
            .expect("write mosquitto.conf");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // Dropping `m` kills the child whatever happens below.
        let mut m = Mosquitto { child, addr };
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if m.child.try_wait().ok().flatten().is_some() {
                return None;
            }
            assert!(
                Instant::now() < until,
                "mosquitto did not listen on {addr} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // A Mosquitto that lost the port exits at once, at startup.
        std::thread::sleep(Duration::from_millis(100));
        m.child.try_wait().ok().flatten().is_none().then_some(m)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
