#!/bin/sh
# Runs hot-restarter on the demo "Envoy" and drives it the way an operator
# would: two hot restarts, a log reopen, then a graceful stop.
#   usage: examples/demo/run.sh [path/to/hot-restarter]
set -eu
bin=${1:-target/release/hot-restarter}
here=$(cd "$(dirname "$0")" && pwd)
DEMO_STATE_DIR=$(mktemp -d)
export DEMO_STATE_DIR
log="$DEMO_STATE_DIR/hot-restarter.log"
"$bin" --term-wait 5 "$here/start_demo.sh" > "$log" 2>&1 &
wrapper=$!
trap 'kill -KILL $wrapper 2>/dev/null || true' EXIT

# Wait (bounded) until the log shows `count` lines matching `pattern`. The
# log may not exist yet (the background job creates it): that is zero lines.
wait_for() {
  pattern=$1 count=$2 tries=0
  while n=$(grep -c -- "$pattern" "$log" 2>/dev/null || true); [ "${n:-0}" -lt "$count" ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 200 ]; then
      echo "demo: timed out waiting for '$pattern'" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.05
  done
}

wait_for "demo epoch 0: serving" 1
for epoch in 1 2; do
  kill -HUP "$wrapper"                       # hot restart
  wait_for "demo epoch $epoch: serving" 1
  wait_for "exited with code=0" "$epoch"     # the old epoch finished draining
done
kill -USR1 "$wrapper"                        # reopen logs
wait_for "reopening logs" 1
kill -TERM "$wrapper"                        # graceful stop
status=0
wait "$wrapper" || status=$?
trap - EXIT
cat "$log"
echo "hot-restarter exited with code $status"
rm -rf "$DEMO_STATE_DIR"
exit "$status"
