#!/usr/bin/env bash
# Side-by-side benchmark: topicgate's broker against rumqttd and Mosquitto, on this
# machine, in one run. topicgate and Mosquitto serve the same policy (1,000 generated
# device clients plus the bench clients): topicgate from the policy file, Mosquitto
# from the ACL that `topicgate policy export --to mosquitto` writes. rumqttd 0.20 has
# no ACL at all: it runs with NO AUTHORIZATION (every client may publish and
# subscribe anywhere), which the table says beside its figures. Every scenario of
# `topicgate bench` runs against each broker, rotating which broker goes first, RUNS
# times; the medians and the ratios go to docs/performance.md (section "Broker vs
# rumqttd and Mosquitto"). Not part of CI: it takes about 15 minutes.
#
# rumqttd is embedded as a library by the small crate in scripts/rumqttd-peer/,
# which this script copies to a build directory outside the repository
# (RUMQTTD_BUILD_DIR, default /tmp/topicgate-rumqttd-peer) and builds there from
# crates.io; later runs reuse that build.
#
# Identity: every broker trusts the username without a password (topicgate
# `serve --dev`, Mosquitto with no password_file, rumqttd with no auth), so none
# spends time on password hashing. Loopback only.
#
# Usage: scripts/bench-vs-mosquitto.sh            (RUNS=3 by default)
#        RUNS=5 scripts/bench-vs-mosquitto.sh
#        QUICK=1 scripts/bench-vs-mosquitto.sh    (short runs, to try the script; no docs written)
#        RUMQTTD=0 scripts/bench-vs-mosquitto.sh  (topicgate and Mosquitto only)
#        NICE=-10 scripts/bench-vs-mosquitto.sh   (run brokers and bench at a higher priority than
#                                                  other work on a shared machine; recorded in the doc)
#        TGDATA=0 scripts/bench-vs-mosquitto.sh   (no second topicgate column: `--data` in the main
#                                                  table, in memory in the DURABLE=1 one)
#        DURABLE=1 RUMQTTD=0 scripts/bench-vs-mosquitto.sh
#                                                 (durable state: topicgate `serve --data DIR` with
#                                                  DURABILITY=sync|relaxed, default sync; Mosquitto with
#                                                  `persistence true`; publishers and subscribers use
#                                                  persistent sessions (`bench --persistent`); written to
#                                                  its own section of docs/performance.md)
set -euo pipefail

RUNS=${RUNS:-3}
QUICK=${QUICK:-0}
NICE=${NICE:-0}
DURABLE=${DURABLE:-0}
DURABILITY=${DURABILITY:-sync}
MOSQ_PORT=${MOSQ_PORT:-18883}
TG_PORT=${TG_PORT:-18884}
# rumqttd listens for MQTT 3.1.1 on RUMQ_PORT (what the bench speaks) and for MQTT 5 on RUMQ_PORT+1.
RUMQ_PORT=${RUMQ_PORT:-18885}
RUMQTTD=${RUMQTTD:-1}
# A second topicgate column in the throughput and 10k-latency scenarios, driven with persistent
# sessions: in the main table topicgate with `--data` (durability: sync) beside the in-memory one
# (issue 17); in the DURABLE=1 table topicgate in memory beside the `--data` one (issue 14: durable,
# in memory and Mosquitto with persistence in the same run).
TGDATA=${TGDATA:-1}
TGD_PORT=${TGD_PORT:-18887}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/topicgate
DOC=$ROOT/docs/performance.md

say() { printf '\n== %s\n' "$*" >&2; }

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    say "installing mosquitto from Debian"
    apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 >/dev/null; }

say "building topicgate (release)"
(cd "$ROOT" && cargo build --release --quiet)

BROKERS="topicgate mosquitto"
if [ "$RUMQTTD" = 1 ]; then
    BROKERS="topicgate rumqttd mosquitto"
    PEER_DIR=${RUMQTTD_BUILD_DIR:-${TMPDIR:-/tmp}/topicgate-rumqttd-peer}
    say "building the rumqttd peer (release) in $PEER_DIR"
    mkdir -p "$PEER_DIR/src"
    # Copied only when changed, so that a rebuild is skipped when nothing changed.
    for f in Cargo.toml src/main.rs; do
        cmp -s "$ROOT/scripts/rumqttd-peer/$f" "$PEER_DIR/$f" || cp "$ROOT/scripts/rumqttd-peer/$f" "$PEER_DIR/$f"
    done
    (cd "$PEER_DIR" && env -u CARGO_TARGET_DIR cargo build --release --quiet)
    RUMQTTD_BIN=$PEER_DIR/target/release/rumqttd-peer
    RUMQ_VERSION="rumqttd $(awk '/^name = "rumqttd"$/{getline; gsub(/"/, "", $3); print $3}' "$PEER_DIR/Cargo.lock")"
fi
if [ "$TGDATA" = 1 ]; then BROKERS="$BROKERS topicgate-data"; fi

WORK=$(mktemp -d /tmp/bench-vs-mosquitto.XXXXXX)
if [ "$DURABLE" = 1 ]; then
    ALT_ARGS=(); ALT_TITLE="topicgate in memory"
else
    ALT_ARGS=(--data "$WORK/topicgate-data-column"); ALT_TITLE="topicgate --data (sync)"
fi
# Mosquitto drops root privileges to its own user, which must be able to read the ACL.
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# 20,000 idle connections need file descriptors on both sides (raising the hard
# limit needs root; otherwise the soft limit goes up to the hard one).
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)

say "policy: 1,000 device clients + 8 bench clients; Mosquitto ACL from the same policy"
"$BIN" policy generate --clients 1000 --bench-clients 8 -o "$WORK/policy.yaml"
"$BIN" policy export --to mosquitto "$WORK/policy.yaml" -o "$WORK/mosquitto" 2>/dev/null
chmod -R a+rX "$WORK/mosquitto"

# The bench's idle and will clients share one identity each (Mosquitto has no
# per-identity session limit): topicgate's maxSessionsPerAuthenticationName is raised.
# Equal limits where the two brokers have the same knob: 10,000 queued messages
# per session (so that 5,000 wills reach one subscriber), 256 in flight, TCP_NODELAY
# on accepted sockets (topicgate always sets it; Mosquitto only with set_tcp_nodelay).
# Both log warnings and errors only (no line per connection).
cat > "$WORK/mosquitto/bench.conf" <<CONF
listener $MOSQ_PORT 127.0.0.1
allow_anonymous true
acl_file $WORK/mosquitto/acl
max_queued_messages 10000
max_inflight_messages 256
max_connections -1
log_dest stderr
log_type error
log_type warning
connection_messages false
set_tcp_nodelay true
CONF
cat > "$WORK/topicgate.yaml" <<CONF
maxConnections: 30000
maxQueuedMessages: 10000
receiveMaximum: 256
maxSessionsPerAuthenticationName: 30000
CONF
# The second topicgate column's config: the same limits, the default durability (sync).
cp "$WORK/topicgate.yaml" "$WORK/topicgate-alt.yaml"
if [ "$DURABLE" = 1 ]; then
    # Mosquitto writes its database at autosave_interval and at shutdown (not per message).
    cat >> "$WORK/mosquitto/bench.conf" <<CONF
persistence true
persistence_location $WORK/mosquitto-data/
CONF
    echo "durability: $DURABILITY" >> "$WORK/topicgate.yaml"
    TG_DATA_ARGS=(--data "$WORK/topicgate-data")
else
    TG_DATA_ARGS=()
fi
# rumqttd's own format. It has no per-session queue limit: a filter's messages live in
# a commit log (here up to 10 segments of 100 MB) that each subscriber reads at its
# own pace; QoS 1 toward a subscriber is capped by its built-in 100 in flight.
# max_inflight_count is how many packets it reads from a connection per batch;
# next_connection_delay_ms 0 accepts connections without its default 1 ms pause.
# No [console], [prometheus] or [metrics] section: nothing but the listeners.
rumq_listener() {
    cat <<CONF
[$1.1]
name = "$1-bench"
listen = "127.0.0.1:$2"
next_connection_delay_ms = 0
    [$1.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 256
    dynamic_filters = true
CONF
}
{
    cat <<CONF
id = 0
[router]
max_connections = 30010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
CONF
    rumq_listener v4 "$RUMQ_PORT"
    rumq_listener v5 "$((RUMQ_PORT + 1))"
} > "$WORK/rumqttd.toml"

wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# Each scenario gets freshly started brokers: memory per connection is then not
# hidden by what an earlier scenario left allocated, and no backlog carries over.
start_brokers() {
    # Every scenario starts from empty stores.
    rm -rf "$WORK/topicgate-data" "$WORK/mosquitto-data" "$WORK/topicgate-data-column"
    mkdir -p "$WORK/mosquitto-data"; chmod 777 "$WORK/mosquitto-data"
    nice -n "$NICE" "$MOSQUITTO" -c "$WORK/mosquitto/bench.conf" >>"$WORK/mosquitto.log" 2>&1 &
    MOSQ_PID=$!; PIDS+=("$MOSQ_PID")
    RUST_LOG=topicgate=warn nice -n "$NICE" "$BIN" serve "$WORK/policy.yaml" --mqtt "127.0.0.1:$TG_PORT" --dev \
        --config "$WORK/topicgate.yaml" "${TG_DATA_ARGS[@]}" >>"$WORK/topicgate.log" 2>&1 &
    TG_PID=$!; PIDS+=("$TG_PID")
    TGD_PID=""
    if [ "$TGDATA" = 1 ]; then
        RUST_LOG=topicgate=warn nice -n "$NICE" "$BIN" serve "$WORK/policy.yaml" --mqtt "127.0.0.1:$TGD_PORT" --dev \
            --config "$WORK/topicgate-alt.yaml" "${ALT_ARGS[@]}" >>"$WORK/topicgate-data.log" 2>&1 &
        TGD_PID=$!; PIDS+=("$TGD_PID")
        wait_port "$TGD_PORT"
    fi
    RUMQ_PID=""
    if [ "$RUMQTTD" = 1 ]; then
        nice -n "$NICE" "$RUMQTTD_BIN" "$WORK/rumqttd.toml" >>"$WORK/rumqttd.log" 2>&1 &
        RUMQ_PID=$!; PIDS+=("$RUMQ_PID")
        wait_port "$RUMQ_PORT"
    fi
    wait_port "$MOSQ_PORT"
    wait_port "$TG_PORT"
}
stop_brokers() {
    # shellcheck disable=SC2086
    kill "$MOSQ_PID" "$TG_PID" $RUMQ_PID $TGD_PID 2>/dev/null || true
    # shellcheck disable=SC2086
    wait "$MOSQ_PID" "$TG_PID" $RUMQ_PID $TGD_PID 2>/dev/null || true
}

# The generated policy's bench clients bench-0..7 may publish and subscribe bench/#.
IDS=(--publisher-user 'bench-{i}' --subscriber-user 'bench-{i}' --will-user bench-0 --idle-user bench-1)
if [ "$DURABLE" = 1 ]; then IDS+=(--persistent); fi
if [ "$QUICK" = 1 ]; then
    MSGS=200000; DUR=3; STORM=500; CONNS=2000; KILLS=10
else
    MSGS=5000000; DUR=10; STORM=5000; CONNS=20000; KILLS=50
fi
# Each broker and the bench need one descriptor per connection plus a few.
if [ "$FDS" -lt $((CONNS + 100)) ]; then
    CONNS=$(( FDS - 100 ))
    echo "warning: only $FDS file descriptors per process (hard limit): connect uses $CONNS connections" >&2
fi
# name | arguments
SCENARIOS=(
    "fanout-qos0|fanout --qos 0 --publishers 4 --subscribers 4 --messages $MSGS --duration $DUR"
    "fanout-qos1|fanout --qos 1 --publishers 4 --subscribers 4 --messages $MSGS --duration $DUR --inflight 256"
    "pair-qos0|pair --qos 0 --publishers 4 --messages $MSGS --duration $DUR"
    "pair-qos1|pair --qos 1 --publishers 4 --messages $MSGS --duration $DUR --inflight 256"
    "fanout-qos1-10k|fanout --qos 1 --publishers 4 --subscribers 4 --rate 10000 --messages $MSGS --duration $DUR --inflight 256"
    "will-kill|will-kill --count $KILLS"
    "will-silent|will-silent --keep-alive 2 --count 5"
    "will-storm|will-storm --count $STORM --duration 20"
    "connect|connect --count $CONNS --concurrency 200 --duration 30"
)

mkdir -p "$WORK/results"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
read -r -a BROKER_LIST <<<"$BROKERS"
for run in $(seq 1 "$RUNS"); do
    # Rotate which broker goes first: run 1 topicgate, run 2 the next one, ...
    ORDER=""
    for k in $(seq 0 $((${#BROKER_LIST[@]} - 1))); do
        ORDER="$ORDER ${BROKER_LIST[$(( (run - 1 + k) % ${#BROKER_LIST[@]} ))]}"
    done
    for entry in "${SCENARIOS[@]}"; do
        name=${entry%%|*}; args=${entry#*|}
        start_brokers
        for broker in $ORDER; do
            extra=()
            if [ "$broker" = topicgate-data ]; then
                # (DURABLE=1 drives every broker with persistent sessions already.)
                case $name in fanout-*|pair-*) [ "$DURABLE" = 1 ] || extra=(--persistent) ;; *) continue ;; esac
            fi
            case $broker in
                topicgate) port=$TG_PORT; pid=$TG_PID ;;
                topicgate-data) port=$TGD_PORT; pid=$TGD_PID ;;
                rumqttd) port=$RUMQ_PORT; pid=$RUMQ_PID ;;
                *) port=$MOSQ_PORT; pid=$MOSQ_PID ;;
            esac
            say "run $run/$RUNS  $name  $broker"
            # shellcheck disable=SC2086
            timeout 180 nice -n "$NICE" "$BIN" bench $args --port "$port" --broker-pid "$pid" "${IDS[@]}" "${extra[@]}" --json \
                >"$WORK/results/$name.$broker.$run.json" 2>"$WORK/results/$name.$broker.$run.err" \
                || echo "(bench exited with $? — see $WORK/results/$name.$broker.$run.err)" >&2
            sleep 1
        done
        stop_brokers
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

MACHINE="$(uname -srm); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(nproc) cores; $(free -g | awk '/Mem:/{print $2}') GiB"
MOSQ_NODELAY=$(grep -q '^set_tcp_nodelay true' "$WORK/mosquitto/bench.conf" && echo "Mosquitto: set_tcp_nodelay true" || echo "Mosquitto: its default, off")
MOSQ_VERSION=$("$MOSQUITTO" -h 2>&1 | head -1 || true)
RUMQ_LINE=""
if [ "$RUMQTTD" = 1 ]; then
    RUMQ_LINE="
- **$RUMQ_VERSION with no authorization at all** (it has no ACL: every client may publish and
  subscribe anywhere; topicgate and Mosquitto enforce the policy). Embedded by
  \`scripts/rumqttd-peer/\` (release build) with MQTT 3.1.1 and 5 listeners on loopback, up to
  30,010 connections, a commit log of 10 x 100 MB per filter, its built-in limit of 100 QoS 1
  messages in flight toward a subscriber. rumqttd has no TCP_NODELAY option and leaves Nagle on
  for its own sends (the bench's clients set it on theirs)."
fi
TGD_LINE=""
if [ "$TGDATA" = 1 ] && [ "$DURABLE" = 1 ]; then
    TGD_LINE="
- **topicgate in memory**: the same binary without \`--data\`, driven with the same persistent
  sessions, in the throughput and 10k-latency scenarios: what the store costs, in the same run."
elif [ "$TGDATA" = 1 ]; then
    TGD_LINE="
- **topicgate --data (sync)**: the same binary with \`--data DIR\` (\`durability: sync\`: every
  acknowledged message fsynced first, group commit) and persistent sessions (\`bench --persistent\`:
  clean session 0), in the throughput and 10k-latency scenarios; the other columns use clean sessions."
fi
TG_VERSION="$("$BIN" --version) ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown))"

# $BROKERS is split on purpose: one argument per broker.
# shellcheck disable=SC2086
SECTION=$(ALT_TITLE="$ALT_TITLE" python3 - "$WORK/results" "$RUNS" $BROKERS <<'PY'
import json, os, statistics, sys
results, runs, brokers = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
TITLE = {"topicgate": "topicgate", "rumqttd": "rumqttd (no ACL)", "mosquitto": "Mosquitto",
         "topicgate-data": os.environ.get("ALT_TITLE", "topicgate --data (sync)")}
def load(name, broker):
    out = []
    for r in range(1, runs + 1):
        p = os.path.join(results, f"{name}.{broker}.{r}.json")
        try:
            with open(p) as f:
                out.append(json.load(f))
        except (OSError, ValueError):
            pass
    return out
def med(reports, get):
    vals = [v for v in (get(r) for r in reports) if v is not None]
    return statistics.median(vals) if vals else None
lat = lambda k: (lambda r: (r.get("latency") or {}).get(k))
loss = lambda r: (100.0 * r["lost"] / r["expected"]) if r.get("expected") else None
cpu = lambda r: (r.get("broker") or {}).get("cpu_percent")
def per_cpu_second(r):
    # Messages delivered per second of broker CPU time (user + system) over the
    # measured phase: what a broker costs per message when it shares the cores.
    secs = (r.get("broker") or {}).get("cpu_seconds")
    return r["delivered"] / secs if secs and r.get("delivered") is not None else None
# scenario, metric label, getter, unit, higher is better
rows = []
for s in ["fanout-qos0", "fanout-qos1", "pair-qos0", "pair-qos1"]:
    rows += [(s, "delivered msg/s", lambda r: r.get("delivered_per_sec"), "", True),
             (s, "delivered msg per broker CPU-second", per_cpu_second, "", True),
             (s, "latency p99", lat("p99_ms"), " ms", False),
             (s, "loss", loss, " %", False),
             (s, "broker CPU", cpu, " %", None)]
rows += [("fanout-qos1-10k", "latency p50", lat("p50_ms"), " ms", False),
         ("fanout-qos1-10k", "latency p99", lat("p99_ms"), " ms", False),
         ("fanout-qos1-10k", "latency p99.9", lat("p999_ms"), " ms", False),
         ("will-kill", "will latency p50", lat("p50_ms"), " ms", False),
         ("will-kill", "will latency p99", lat("p99_ms"), " ms", False),
         ("will-silent", "will after CONNECT, max (limit 3,100 ms)", lat("max_ms"), " ms", False),
         ("will-silent", "wills later than the limit", lambda r: r.get("wills_late"), "", False),
         ("will-storm", "wills delivered", lambda r: r.get("delivered"), "", True),
         ("will-storm", "wills lost", lambda r: r.get("lost"), "", False),
         ("will-storm", "time to last will", lambda r: r.get("time_to_last_will_ms"), " ms", False),
         ("connect", "connections held", lambda r: r.get("connections_established"), "", True),
         ("connect", "connections/s", lambda r: r.get("connections_per_sec"), "", True),
         ("connect", "broker RSS per connection", lambda r: r.get("broker_rss_per_connection_bytes"), " B", False)]
def fmt(v, unit):
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}{unit}"
    return f"{v:.3g}{unit}"
# The ratio columns compare the in-memory topicgate with the peers; the --data
# column is read against the in-memory one by eye (same run).
others = [b for b in brokers if b not in ("topicgate", "topicgate-data")]
print("| scenario | metric | " + " | ".join(TITLE[b] for b in brokers) + " | "
      + " | ".join(f"topicgate/{TITLE[b].split()[0]}" for b in others) + " |")
print("|---|---|" + "---:|" * (len(brokers) + len(others)))
for s, label, get, unit, higher in rows:
    vals = {b: med(load(s, b), get) for b in brokers}
    t = vals["topicgate"]
    ratios = []
    for b in others:
        m = vals[b]
        ratio = f"{t / m:.2f}x" if (t is not None and m) else "—"
        if higher is not None and ratio != "—":
            ratio += " (higher is better)" if higher else " (lower is better)"
        ratios.append(ratio)
    print(f"| {s} | {label} | " + " | ".join(fmt(vals[b], unit) for b in brokers) + " | "
          + " | ".join(ratios) + " |")
errs = []
for f in sorted(os.listdir(results)):
    if f.endswith(".json"):
        try:
            with open(os.path.join(results, f)) as fh:
                for e in json.load(fh).get("errors", []):
                    errs.append(f"{f[:-5]}: {e}")
        except (OSError, ValueError):
            errs.append(f"{f[:-5]}: no result (the bench failed; see its .err file)")
if errs:
    print("\nErrors reported by the bench:\n")
    for e in errs[:30]:
        print(f"- {e}")
PY
)

echo "$SECTION"
if [ "$QUICK" = 1 ]; then
    say "QUICK run: docs/performance.md not changed (results in $WORK/results)"
    exit 0
fi

if [ "$DURABLE" = 1 ]; then
    MARK="-durable"
    TITLE=", durable state (topicgate \`--data\`, durability: $DURABILITY; Mosquitto \`persistence true\`; persistent sessions)"
else
    MARK=""; TITLE=""
fi
BODY=$(cat <<MD
<!-- bench-vs-mosquitto$MARK:start (written by scripts/bench-vs-mosquitto.sh) -->
## Broker vs rumqttd and Mosquitto$TITLE

Medians of $RUNS runs, rotating which broker goes first, measured $(date -u '+%Y-%m-%d %H:%M UTC').

- Machine: $MACHINE. Load average before/after: $LOAD_BEFORE / $LOAD_AFTER
  (the load generator shares the machine with the broker under test; NICE=$NICE for brokers and bench).
- Brokers: topicgate $TG_VERSION (\`topicgate serve --dev\`, 1,008-client generated policy);
  $MOSQ_VERSION with the ACL from \`topicgate policy export --to mosquitto\` of the same policy.
  topicgate and Mosquitto: username-only identity on loopback, 10,000 queued messages per session, 256 in flight,
  TCP_NODELAY ($MOSQ_NODELAY).$RUMQ_LINE$TGD_LINE
- Load generator: \`topicgate bench\` (MQTT 3.1.1, 64-byte payloads, TCP_NODELAY).
- Command: \`scripts/bench-vs-mosquitto.sh\` (RUNS=$RUNS); the scenario arguments are in the script.
  \`connect\` held $CONNS idle connections (open-file limit per process: $FDS).

$SECTION
<!-- bench-vs-mosquitto$MARK:end -->
MD
)
python3 - "$DOC" "$BODY" "$MARK" <<'PY'
import re, sys
path, body, mark = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    with open(path) as f:
        doc = f.read()
except FileNotFoundError:
    doc = "# Performance\n"
pattern = re.compile(rf"<!-- bench-vs-mosquitto{mark}:start.*?<!-- bench-vs-mosquitto{mark}:end -->", re.S)
doc = pattern.sub(lambda _: body, doc) if pattern.search(doc) else doc.rstrip("\n") + "\n\n" + body + "\n"
with open(path, "w") as f:
    f.write(doc)
PY
say "wrote the Broker vs Mosquitto section of $DOC (raw results: $WORK/results)"
trap - EXIT
cleanup
