#!/bin/sh
# Started by hot-restarter once per restart epoch: `hot-restarter start_envoy.sh`.
#
# RESTART_EPOCH is set by hot-restarter (0 for the first Envoy, +1 for every
# SIGHUP) and must reach Envoy as --restart-epoch.
#
# `exec` matters: Envoy must be hot-restarter's direct child. Envoy sets
# PR_SET_PDEATHSIG on itself, so it dies with its parent; without exec its
# parent is this shell, and signals (SIGUSR1, SIGTERM) stop at the shell.
#
# --base-id picks the shared memory and the unix domain sockets through
# which epoch N talks to epoch N-1. It must be the SAME for every epoch of
# one Envoy, and DIFFERENT for every Envoy on the host.
#
# --use-dynamic-base-id (let Envoy choose a free id) is only valid at epoch
# 0: Envoy writes the id it chose to --base-id-path, and every later epoch
# must pass that id as --base-id. Set ENVOY_BASE_ID=dynamic to get that.
set -eu

ENVOY=${ENVOY:-envoy}
ENVOY_CONFIG=${ENVOY_CONFIG:-/etc/envoy/envoy.yaml}
ENVOY_BASE_ID=${ENVOY_BASE_ID:-0}
ENVOY_BASE_ID_PATH=${ENVOY_BASE_ID_PATH:-/run/envoy/base-id}
# Old epochs drain for DRAIN_S seconds and are told to exit after
# PARENT_SHUTDOWN_S (which must be larger).
ENVOY_DRAIN_S=${ENVOY_DRAIN_S:-60}
ENVOY_PARENT_SHUTDOWN_S=${ENVOY_PARENT_SHUTDOWN_S:-90}

if [ "$ENVOY_BASE_ID" = dynamic ]; then
  if [ "$RESTART_EPOCH" -eq 0 ]; then
    mkdir -p "$(dirname "$ENVOY_BASE_ID_PATH")"
    set -- --use-dynamic-base-id --base-id-path "$ENVOY_BASE_ID_PATH" "$@"
  else
    set -- --base-id "$(cat "$ENVOY_BASE_ID_PATH")" "$@"
  fi
else
  set -- --base-id "$ENVOY_BASE_ID" "$@"
fi

exec "$ENVOY" -c "$ENVOY_CONFIG" \
  --restart-epoch "$RESTART_EPOCH" \
  --drain-time-s "$ENVOY_DRAIN_S" \
  --parent-shutdown-time-s "$ENVOY_PARENT_SHUTDOWN_S" \
  "$@"
