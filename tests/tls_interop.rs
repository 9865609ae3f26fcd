//! Interop over TLS and WebSockets with real third-party clients, through the
//! command line as a user runs it (`certs init`, thumbprints pasted, `serve`):
//! - Debian's mosquitto-clients with `--cafile --cert --key` on `--mqtts`;
//! - MQTT.js (npm `mqtt`, installed by `npm ci` in `tests/interop/js`) on `--ws`
//!   (usernames, `--dev`) and `--wss` (client certificates).
//!
//! `harness = false`: when a peer is missing the summary shows the test as ignored
//! with the reason, and with `CI` set it fails (see `support::peers`).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::peers::{js_dir, Interop, Peer};
use support::serve::{announced, port_of, Killer};

const WAIT: Duration = Duration::from_secs(10);

fn main() -> std::process::ExitCode {
    support::peers::main(&[
        Interop {
            name: "mosquitto_clients_over_tls_seed_scenario",
            needs: &[Peer::MosquittoClients],
            run: mosquitto_clients_over_tls_seed_scenario,
        },
        Interop {
            name: "mqtt_js_over_websockets_seed_scenario",
            needs: &[Peer::MqttJs],
            run: mqtt_js_over_websockets_seed_scenario,
        },
    ])
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_topicgate"))
}

/// `certs init` for the seed policy, the thumbprints pasted into a copy of it.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let seed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/lwt.yaml");
    let certs = dir.join("certs");
    let o = bin()
        .args(["certs", "init"])
        .arg(&seed_path)
        .arg("--out")
        .arg(&certs)
        .output()
        .expect("certs init");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut policy = std::fs::read_to_string(&seed_path).expect("seed");
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let (print, name) = line.split_once("  ").expect("`THUMBPRINT  NAME`");
        let at = format!("\n  {name}:\n");
        policy = policy.replacen(
            &at,
            &format!("{at}    authentication: {{ validationScheme: ThumbprintMatch, allowedThumbprints: [ \"{print}\" ] }}\n"),
            1,
        );
    }
    let path = dir.join("policy.yaml");
    std::fs::write(&path, policy).expect("policy");
    (path, certs)
}

/// Serves with the given listener flags; returns the port of each, in order.
fn serve(policy: &Path, certs: &Path, flags: &[&str]) -> (Killer, Vec<u16>) {
    let mut child = bin()
        .arg("serve")
        .arg(policy)
        .args(flags)
        .arg("--cert")
        .arg(certs.join("server.pem"))
        .arg("--key")
        .arg(certs.join("server.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let listeners = flags
        .iter()
        .filter(|f| f.starts_with("--"))
        .filter(|f| **f != "--dev")
        .count();
    let ports = announced(&mut child, listeners)
        .0
        .iter()
        .map(|l| port_of(l))
        .collect();
    (Killer::one(child), ports)
}

/// Lines of a child's stdout, on a channel (so reads can time out).
fn lines(out: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line that contains `needle`; returns the lines seen up to it.
fn wait_for(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(WAIT) {
            Ok(l) => {
                let done = l.contains(needle);
                seen.push(l);
                if done {
                    return seen;
                }
            }
            Err(_) => panic!("no line with `{needle}`; saw {seen:#?}"),
        }
    }
}

fn mosquitto(tool: &str, port: u16, certs: &Path, client: &str) -> Command {
    let mut c = if tool == "stdbuf" {
        let mut c = Command::new("stdbuf");
        c.args(["-oL", "mosquitto_sub"]);
        c
    } else {
        Command::new(tool)
    };
    c.args(["-h", "localhost", "-p", &port.to_string(), "--cafile"])
        .arg(certs.join("ca.pem"))
        .arg("--cert")
        .arg(certs.join(format!("clients/{client}.pem")))
        .arg("--key")
        .arg(certs.join(format!("clients/{client}.key")));
    c
}

fn mosquitto_clients_over_tls_seed_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (policy, certs) = setup(dir.path());
    let (mut procs, ports) = serve(&policy, &certs, &["--mqtts", "127.0.0.1:0"]);
    let port = ports[0];

    // Line-buffered through stdbuf: mosquitto_sub's debug lines say when SUBACK came.
    let mut sub = mosquitto("stdbuf", port, &certs, "actuator1");
    let mut sub = sub
        .args([
            "-i",
            "act1",
            "-t",
            "clients/+/status",
            "-q",
            "1",
            "-v",
            "-d",
            "-C",
            "2",
            "-W",
            "20",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub");
    let sub_lines = lines(sub.stdout.take().expect("stdout"));
    procs.0.push(sub);
    assert_eq!(
        wait_for(&sub_lines, "Subscribed (mid: 1)")
            .last()
            .map(String::as_str),
        Some("Subscribed (mid: 1): 1")
    );

    // sensor1 stays connected (reading lines from stdin) with its will.
    let mut sensor = mosquitto("mosquitto_pub", port, &certs, "sensor1")
        .args(["-i", "s1", "-t", "clients/sensor1/status", "-q", "1", "-l"])
        .args([
            "--will-topic",
            "clients/sensor1/status",
            "--will-payload",
            "offline",
            "--will-qos",
            "1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_pub");
    writeln!(sensor.stdin.as_mut().expect("stdin"), "online").expect("write");
    wait_for(&sub_lines, "clients/sensor1/status online");
    // Killed: no DISCONNECT, so the broker publishes the will.
    sensor.kill().expect("kill sensor");
    let _ = sensor.wait();
    wait_for(&sub_lines, "clients/sensor1/status offline");

    // Refusals, as mosquitto reports them (its exit code is the CONNACK code).
    let code = |version: &str, client: &str, user: Option<&str>| {
        let mut c = mosquitto("mosquitto_pub", port, &certs, client);
        c.args([
            "-V",
            version,
            "-i",
            "probe",
            "-t",
            "clients/sensor1/status",
            "-m",
            "x",
        ]);
        if let Some(u) = user {
            c.args(["-u", u]);
        }
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mosquitto_pub")
            .code()
    };
    // Another client's certificate (and key) for the username sensor1.
    assert_eq!(code("mqttv311", "sensor2", Some("sensor1")), Some(4));
    assert_eq!(code("mqttv5", "sensor2", Some("sensor1")), Some(0x86));
    // A certificate the policy does not know.
    let stranger_dir = dir.path().join("stranger");
    let o = bin()
        .args(["certs", "init"])
        .arg(&policy)
        .arg("--out")
        .arg(&stranger_dir)
        .output()
        .expect("init");
    assert!(o.status.success());
    let stranger = |version: &str| {
        Command::new("mosquitto_pub")
            .args([
                "-V",
                version,
                "-h",
                "localhost",
                "-p",
                &port.to_string(),
                "--cafile",
            ])
            .arg(certs.join("ca.pem"))
            .arg("--cert")
            .arg(stranger_dir.join("clients/sensor1.pem"))
            .arg("--key")
            .arg(stranger_dir.join("clients/sensor1.key"))
            .args(["-i", "probe", "-t", "clients/sensor1/status", "-m", "x"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mosquitto_pub")
            .code()
    };
    assert_eq!(stranger("mqttv311"), Some(5));
    assert_eq!(stranger("mqttv5"), Some(0x87));
}

fn mqtt_js(args: &[&str]) -> Vec<String> {
    let out = Command::new("node")
        .arg(js_dir().join("lwt.js"))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("node");
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(out.status.success(), "MQTT.js failed: {lines:#?}");
    lines
}

fn mqtt_js_over_websockets_seed_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (policy, certs) = setup(dir.path());
    let (_procs, ports) = serve(
        &policy,
        &certs,
        &["--dev", "--ws", "127.0.0.1:0", "--wss", "127.0.0.1:0"],
    );
    let expected = [
        "granted 1",
        "clients/sensor1/status online",
        "denied 135",
        "clients/sensor1/status offline",
    ];
    // --ws: usernames (development mode).
    assert_eq!(
        mqtt_js(&[&format!("ws://127.0.0.1:{}", ports[0])]),
        expected
    );
    // --wss: identity from the certificates made by `certs init`.
    let certs_s = certs.display().to_string();
    assert_eq!(
        mqtt_js(&[&format!("wss://localhost:{}", ports[1]), &certs_s]),
        expected
    );
}
