#!/bin/sh
# A stand-in for Envoy that needs nothing installed. Like Envoy, epoch N
# takes over from epoch N-1 and then tells it to exit; the old epoch exits 0
# (an expected exit for hot-restarter). SIGUSR1 is "reopen the logs".
state=${DEMO_STATE_DIR:-/tmp}
echo "demo epoch $RESTART_EPOCH: serving (pid $$)"
echo $$ > "$state/demo-epoch-$RESTART_EPOCH.pid"
if [ "$RESTART_EPOCH" -gt 0 ]; then
  parent=$(cat "$state/demo-epoch-$((RESTART_EPOCH - 1)).pid" 2>/dev/null || true)
  # Envoy waits --parent-shutdown-time-s; the demo waits a moment.
  [ -n "$parent" ] && (sleep "${DEMO_PARENT_SHUTDOWN_S:-1}"; kill -TERM "$parent" 2>/dev/null) &
fi
trap 'echo "demo epoch $RESTART_EPOCH: reopening logs"' USR1
trap 'echo "demo epoch $RESTART_EPOCH: draining done, exiting 0"; exit 0' TERM
while :; do sleep 0.1; done
