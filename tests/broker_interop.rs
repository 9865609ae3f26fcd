//! Interop smoke test: Debian's mosquitto-clients and Python paho-mqtt against
//! `topicgate serve --dev policies/lwt.yaml`, reproducing the seed scenario.
//!
//! Needs `mosquitto_sub`, `mosquitto_pub` and paho-mqtt 2 (in `.venv-peers/`, made
//! by `scripts/test-peers.sh`, or the Python named by `TOPICGATE_PYTHON`).
//! `harness = false`: when they are missing the summary shows the test as ignored
//! with the reason, and with `CI` set it fails (see `support::peers`).

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::peers::{python, Interop, Peer};
use support::serve::{listening_port, Killer};

fn main() -> std::process::ExitCode {
    support::peers::main(&[Interop {
        name: "mosquitto_and_paho_reproduce_the_seed_scenario",
        needs: &[Peer::MosquittoClients, Peer::Paho],
        run: mosquitto_and_paho_reproduce_the_seed_scenario,
    }])
}

/// Starts the broker on an ephemeral port and returns it with the port.
fn serve() -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_topicgate"))
        .args(["serve", "--dev", "--mqtt", "127.0.0.1:0"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/lwt.yaml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn topicgate serve");
    let port = listening_port(&mut child);
    (child, port)
}

const PAHO_SUB: &str = r#"
import sys, time
import paho.mqtt.client as mqtt
port = int(sys.argv[1])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-act2", protocol=mqtt.MQTTv311)
c.username_pw_set("actuator2")
c.on_connect = lambda c, u, f, rc, p: c.subscribe("clients/+/status", qos=1)
c.on_subscribe = lambda c, u, mid, rcs, p: print("ready", flush=True)
c.on_message = lambda c, u, m: print(m.topic, m.payload.decode(), flush=True)
c.connect("127.0.0.1", port)
c.loop_start()
time.sleep(float(sys.argv[2]))
c.loop_stop()
"#;

const PAHO_SENSOR: &str = r#"
import sys, time
import paho.mqtt.client as mqtt
port, user, will = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-" + user, protocol=mqtt.MQTTv5)
c.username_pw_set(user)
c.will_set(will, "offline", qos=1)
def on_connect(c, u, f, rc, p):
    print("connack", rc, flush=True)
c.on_connect = on_connect
c.connect("127.0.0.1", port)
c.loop_start()
time.sleep(30)
"#;

fn read_all(mut c: Child) -> String {
    let mut s = String::new();
    if let Some(mut out) = c.stdout.take() {
        let _ = c.wait();
        let _ = out.read_to_string(&mut s);
    }
    s
}

fn mosquitto_and_paho_reproduce_the_seed_scenario() {
    let (broker, port) = serve();
    let mut guard = Killer(vec![broker]);
    let p = port.to_string();

    // Watchers: mosquitto_sub (MQTT 5) as actuator1, paho (3.1.1) as actuator2.
    let msub = Command::new("mosquitto_sub")
        .args([
            "-V",
            "mqttv5",
            "-h",
            "127.0.0.1",
            "-p",
            &p,
            "-u",
            "actuator1",
            "-i",
            "msub",
        ])
        .args(["-t", "clients/+/status", "-v", "-q", "1", "-W", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub");
    let psub = Command::new(python())
        .args(["-c", PAHO_SUB, &p, "6"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("paho subscriber");
    // Wait for paho's SUBACK (python starts slowly on a loaded machine).
    let mut psub = psub;
    let mut psub_out = BufReader::new(psub.stdout.take().expect("stdout"));
    let mut ready = String::new();
    psub_out.read_line(&mut ready).expect("paho ready line");
    assert_eq!(ready.trim(), "ready");
    std::thread::sleep(Duration::from_millis(300));

    // sensor2 disconnects gracefully: its will ("gone") must NOT be published.
    let st = Command::new("mosquitto_pub")
        .args([
            "-V",
            "mqttv311",
            "-h",
            "127.0.0.1",
            "-p",
            &p,
            "-u",
            "sensor2",
            "-i",
            "s2",
        ])
        .args([
            "--will-topic",
            "clients/sensor2/status",
            "--will-payload",
            "gone",
        ])
        .args(["-t", "clients/sensor2/status", "-m", "online", "-q", "1"])
        .status()
        .expect("mosquitto_pub");
    assert!(st.success());

    // sensor1 (mosquitto_pub, MQTT 5) is killed with SIGKILL: its will arrives.
    let mut mpub = Command::new("mosquitto_pub")
        .args([
            "-V",
            "mqttv5",
            "-h",
            "127.0.0.1",
            "-p",
            &p,
            "-u",
            "sensor1",
            "-i",
            "s1",
        ])
        .args([
            "--will-topic",
            "clients/sensor1/status",
            "--will-payload",
            "offline",
            "--will-qos",
            "1",
        ])
        .args(["-t", "clients/sensor1/status", "-l"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_pub -l");
    // A paho sensor2 (MQTT 5) with a will is killed too.
    let mut psensor = Command::new(python())
        .args(["-c", PAHO_SENSOR, &p, "sensor2", "clients/sensor2/status"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("paho sensor");
    let mut line = String::new();
    let mut out = BufReader::new(psensor.stdout.take().expect("stdout"));
    out.read_line(&mut line).expect("paho connack line");
    assert!(line.contains("Success"), "paho sensor2 connack: {line}");
    std::thread::sleep(Duration::from_millis(500));
    mpub.kill().expect("SIGKILL mosquitto_pub");
    let _ = mpub.wait();
    psensor.kill().expect("SIGKILL paho");
    let _ = psensor.wait();

    // A will topic of another client is refused Not authorized, in every client.
    for v in ["mqttv5", "mqttv311"] {
        let o = Command::new("mosquitto_pub")
            .args([
                "-V",
                v,
                "-h",
                "127.0.0.1",
                "-p",
                &p,
                "-u",
                "sensor1",
                "-i",
                "s1-bad",
            ])
            .args([
                "--will-topic",
                "clients/sensor2/status",
                "--will-payload",
                "x",
            ])
            .args(["-t", "clients/sensor1/status", "-m", "hi"])
            .output()
            .expect("mosquitto_pub");
        let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
        assert!(!o.status.success(), "{v}: refused expected");
        assert!(err.contains("not authori"), "{v}: {err}");
    }
    let paho_bad = Command::new(python())
        .args([
            "-c",
            &PAHO_SENSOR.replace("time.sleep(30)", "time.sleep(1)"),
            &p,
            "sensor1",
            "clients/sensor2/status",
        ])
        .output()
        .expect("paho");
    let out_bad = String::from_utf8_lossy(&paho_bad.stdout);
    assert!(out_bad.contains("Not authorized"), "paho: {out_bad}");

    let m = read_all(msub);
    let _ = psub.wait();
    let mut pp = String::new();
    let _ = psub_out.read_to_string(&mut pp);
    for (who, got) in [("mosquitto_sub", &m), ("paho", &pp)] {
        assert!(
            got.contains("clients/sensor1/status offline"),
            "{who}: {got}"
        );
        assert!(
            got.contains("clients/sensor2/status offline"),
            "{who}: {got}"
        );
        assert!(
            got.contains("clients/sensor2/status online"),
            "{who}: {got}"
        );
        assert!(!got.contains("gone"), "{who} got a discarded will: {got}");
    }
    // SIGTERM: graceful stop.
    if let Some(b) = guard.0.first() {
        let _ = Command::new("kill")
            .args(["-TERM", &b.id().to_string()])
            .status();
    }
    if let Some(mut b) = guard.0.pop() {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(status)) = b.try_wait() {
                assert!(status.success(), "serve exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = b.kill();
        panic!("serve did not stop on SIGTERM");
    }
}
