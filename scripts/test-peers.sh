#!/usr/bin/env bash
# Installs the third-party MQTT peers the interop tests drive, as far as the user may:
#   - Debian packages mosquitto, mosquitto-clients (and nodejs, npm, python3-venv where
#     missing): installed when run as root, otherwise listed with the command to run;
#   - paho-mqtt 2 into the virtual environment .venv-peers/ (the tests use its python;
#     TOPICGATE_PYTHON overrides), no root needed;
#   - MQTT.js into tests/interop/js/node_modules (npm ci), no root needed.
# Nothing is stopped or killed. Exits 1 when a peer is still missing at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }
have_mosquitto() { have mosquitto || [ -x /usr/sbin/mosquitto ] || [ -x /usr/local/sbin/mosquitto ]; }
have_venv() { have python3 && python3 -c 'import ensurepip, venv' >/dev/null 2>&1; }

# 1. Debian packages.
packages=()
have_mosquitto || packages+=(mosquitto)
{ have mosquitto_pub && have mosquitto_sub; } || packages+=(mosquitto-clients)
{ have node && have npm; } || packages+=(nodejs npm)
have python3 || packages+=(python3)
have_venv || packages+=(python3-venv)
if ((${#packages[@]})); then
  if [ "$(id -u)" -eq 0 ] && have apt-get; then
    echo "test-peers: apt-get install ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  else
    echo "test-peers: missing Debian packages: ${packages[*]}" >&2
    echo "test-peers: this needs root; run:  sudo apt-get install ${packages[*]}" >&2
  fi
fi

# 2. paho-mqtt in a virtual environment: Debian's Python refuses `pip install` into
#    the system (externally-managed-environment), and a venv needs no root.
if have_venv; then
  if [ ! -x .venv-peers/bin/python ]; then
    echo "test-peers: python3 -m venv .venv-peers"
    python3 -m venv .venv-peers
  fi
  .venv-peers/bin/python -m pip install --quiet --disable-pip-version-check 'paho-mqtt>=2,<3'
fi

# 3. MQTT.js, pinned by tests/interop/js/package-lock.json.
if have npm; then
  (cd tests/interop/js && npm ci --no-audit --no-fund --update-notifier=false --loglevel=error)
fi

# What the tests will find.
status=0
report() {
  if "$2"; then echo "test-peers: ok       $1"; else echo "test-peers: MISSING  $1" >&2; status=1; fi
}
paho() { [ -x .venv-peers/bin/python ] && .venv-peers/bin/python -c 'import paho.mqtt.client as m; m.CallbackAPIVersion.VERSION2' 2>/dev/null; }
clients() { have mosquitto_pub && have mosquitto_sub; }
mqttjs() { have node && [ -f tests/interop/js/node_modules/mqtt/package.json ]; }
report "mosquitto (broker)" have_mosquitto
report "mosquitto_pub, mosquitto_sub" clients
report "paho-mqtt in .venv-peers" paho
report "MQTT.js in tests/interop/js" mqttjs
if have_mosquitto && { have systemctl && systemctl is-active --quiet mosquitto 2>/dev/null; }; then
  echo "test-peers: note: the mosquitto service holds port 1883 (the tests use other ports);" \
    "\`topicgate serve --dev\` needs it: sudo systemctl disable --now mosquitto"
fi
exit "$status"
