#!/usr/bin/env bash
# Memory before authentication (issue 11): SOCKETS unauthenticated sockets each
# send all but the last byte of a CONNECT of SIZE bytes and hold the socket open;
# the script reports how much the broker's resident memory (VmRSS) rose.
# Target: < 100 MB for 300 sockets of a 1 MB CONNECT (Mosquitto 2.0.11: +288 MB).
#
# Two scenarios run by default:
#   1. SIZE = 1 MB: above maxConnectPacketSize, refused when its Remaining
#      Length is read (MQTT 5: CONNACK 0x95), so nothing is held;
#   2. SIZE = the largest CONNECT allowed (maxConnectPacketSize, 64 KiB): the
#      worst an attacker can make the broker hold; bounded by maxPreAuthBytes.
#
# Loopback only; every socket and wait is bounded. Not part of CI.
# Usage: scripts/preauth-memory.sh                  (release binary if built, else debug)
#        SOCKETS=300 BIN=target/debug/topicgate scripts/preauth-memory.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-}
if [ -z "$BIN" ]; then
  if [ -x "$TARGET/release/topicgate" ]; then BIN=$TARGET/release/topicgate; else BIN=$TARGET/debug/topicgate; fi
fi
SOCKETS=${SOCKETS:-300}
[ "$SOCKETS" -le 2000 ] || { echo "SOCKETS is capped at 2000" >&2; exit 2; }
ulimit -n 4096 2>/dev/null || true

OUT=$(mktemp -d)
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$OUT"; }
trap cleanup EXIT

"$BIN" serve --dev --mqtt 127.0.0.1:0 "$ROOT/policies/lwt.yaml" >"$OUT/stdout" 2>"$OUT/stderr" &
PID=$!
for _ in $(seq 100); do grep -q "listening on" "$OUT/stdout" 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's/.*listening on mqtt:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$OUT/stdout" | head -1)
[ -n "$PORT" ] || { echo "the broker did not start" >&2; cat "$OUT/stderr" >&2; exit 1; }

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }

scenario() { # SIZE in bytes
  python3 - "$PORT" "$SOCKETS" "$1" "$PID" <<'EOF'
import socket, sys, time

port, count, size, pid = (int(a) for a in sys.argv[1:5])

def rss_kb():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])

def connect_packet(total):
    # MQTT 5 CONNECT of `total` bytes: client ID "x", a will whose payload fills it.
    def vbi(n):
        out = bytearray()
        while True:
            b, n = n % 128, n // 128
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)
    head = b"\x00\x04MQTT\x05\x06\x00\x00\x00" + b"\x00\x01x" + b"\x00" + b"\x00\x01w"
    for body_len in range(total, 0, -1):
        payload = body_len - len(head) - 2
        if 1 + len(vbi(body_len)) + body_len == total and 0 <= payload < 65536:
            return b"\x10" + vbi(body_len) + head + payload.to_bytes(2, "big") + b"\x00" * payload
    # Payload beyond 65,535 bytes: the bytes after the header are never parsed.
    body_len = total - 1 - len(vbi(total))
    return b"\x10" + vbi(body_len) + head + b"\xff\xff" + b"\x00" * (body_len - len(head) - 2)

packet = connect_packet(size)
before = rss_kb()
socks, refused = [], 0
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(5)
    try:
        s.sendall(packet[:-1])
    except OSError:
        refused += 1  # closed by the broker while sending
    socks.append(s)
time.sleep(1.0)
peak = rss_kb()
for s in socks:
    s.close()
print(f"{count} sockets x {size} bytes (all but the last): RSS {before/1024:.1f} MB -> {peak/1024:.1f} MB "
      f"(+{(peak-before)/1024:.1f} MB); {refused} refused while sending")
EOF
}

echo "broker: $BIN (pid $PID), port $PORT"
scenario $((1024 * 1024))
scenario $((64 * 1024))
sleep 1
echo "after closing every socket: RSS $(( $(rss_kb) / 1024 )) MB"
