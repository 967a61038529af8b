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
#
# Side-by-side handoff (hot-restarter --envoy-admin A0 --handoff-admin A1):
# for a moment two Envoy "generations" run side by side, each with its own
# base-id and admin address, on the same listener ports (SO_REUSEPORT).
# hot-restarter then also sets HOT_RESTARTER_SLOT (0 or 1) and
# HOT_RESTARTER_ENVOY_ADMIN (the admin address of that slot: host:port,
# [v6]:port or /path/of/a/unix/socket). Slot 1 uses --base-id
# ENVOY_BASE_ID+1 (so keep base-ids of different Envoys two apart) or, with
# ENVOY_BASE_ID=dynamic, its own ENVOY_BASE_ID_PATH.1; the admin address
# is merged over the bootstrap's with --config-yaml. Without
# HOT_RESTARTER_SLOT nothing of this applies.
set -eu

ENVOY=${ENVOY:-envoy}
ENVOY_CONFIG=${ENVOY_CONFIG:-/etc/envoy/envoy.yaml}
ENVOY_BASE_ID=${ENVOY_BASE_ID:-0}
ENVOY_BASE_ID_PATH=${ENVOY_BASE_ID_PATH:-/run/envoy/base-id}
# Old epochs drain for DRAIN_S seconds and are told to exit after
# PARENT_SHUTDOWN_S (which must be larger).
ENVOY_DRAIN_S=${ENVOY_DRAIN_S:-60}
ENVOY_PARENT_SHUTDOWN_S=${ENVOY_PARENT_SHUTDOWN_S:-90}

SLOT=${HOT_RESTARTER_SLOT:-}
case $SLOT in
'' | 0) ;;
1) ENVOY_BASE_ID_PATH=$ENVOY_BASE_ID_PATH.1 ;;
*) echo "start_envoy.sh: HOT_RESTARTER_SLOT must be 0 or 1, not $SLOT" >&2; exit 2 ;;
esac

if [ "$ENVOY_BASE_ID" = dynamic ]; then
  if [ "$RESTART_EPOCH" -eq 0 ]; then
    mkdir -p "$(dirname "$ENVOY_BASE_ID_PATH")"
    set -- --use-dynamic-base-id --base-id-path "$ENVOY_BASE_ID_PATH" "$@"
  else
    set -- --base-id "$(cat "$ENVOY_BASE_ID_PATH")" "$@"
  fi
elif [ -n "$SLOT" ]; then
  set -- --base-id "$((ENVOY_BASE_ID + SLOT))" "$@"
else
  set -- --base-id "$ENVOY_BASE_ID" "$@"
fi

if [ -n "$SLOT" ] && [ -n "${HOT_RESTARTER_ENVOY_ADMIN:-}" ]; then
  case $HOT_RESTARTER_ENVOY_ADMIN in
  /*) address="pipe: {path: '$HOT_RESTARTER_ENVOY_ADMIN'}" ;;
  \[*\]:*)
    host=${HOT_RESTARTER_ENVOY_ADMIN#\[}
    address="socket_address: {address: '${host%%]:*}', port_value: ${host##*]:}}"
    ;;
  *:*)
    address="socket_address: {address: '${HOT_RESTARTER_ENVOY_ADMIN%:*}', port_value: ${HOT_RESTARTER_ENVOY_ADMIN##*:}}"
    ;;
  *) echo "start_envoy.sh: cannot use admin address $HOT_RESTARTER_ENVOY_ADMIN" >&2; exit 2 ;;
  esac
  set -- --config-yaml "admin: {address: {$address}}" "$@"
fi

exec "$ENVOY" -c "$ENVOY_CONFIG" \
  --restart-epoch "$RESTART_EPOCH" \
  --drain-time-s "$ENVOY_DRAIN_S" \
  --parent-shutdown-time-s "$ENVOY_PARENT_SHUTDOWN_S" \
  "$@"
