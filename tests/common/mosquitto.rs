//! Starting a real Mosquitto for integration tests. Mosquitto is a Debian package
//! (`apt-get install mosquitto`); without it a test is skipped loudly, except under
//! CI (env `CI` set), where a missing Mosquitto is a failure.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The mosquitto binary, or `None` (after saying so) when the test should be skipped.
pub fn binary(test: &str) -> Option<PathBuf> {
    let found = [
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/usr/bin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "mosquitto is not installed but CI is set: install it (apt-get install mosquitto) so that {test} runs"
        );
        eprintln!("SKIPPED {test}: mosquitto is not installed (apt-get install mosquitto)");
    }
    found
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
    pub fn start(bin: &Path, dir: &Path, extra: &str) -> Mosquitto {
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
        let m = Mosquitto { child, addr };
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < until,
                "mosquitto did not listen on {addr} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        m
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
