#!/bin/sh
# hot-restarter --ready-check: exit 0 once the Envoy of THIS restart epoch
# ($RESTART_EPOCH, set by hot-restarter) is LIVE.
#
# `curl -fs http://127.0.0.1:9901/ready` alone is not enough: the new epoch
# binds the admin port about 100 ms after it starts, and until then (and
# before the old epoch shuts its admin down at the new one's start-up) a
# 200 from /ready may come from the PREVIOUS epoch. /server_info says which
# epoch answered, and its state (PRE_INITIALIZING, INITIALIZING, LIVE, ...).
#
# ENVOY_ADMIN_PORT: the admin port of envoy.yaml (default 9901).
info=$(curl -fs --max-time 2 "http://127.0.0.1:${ENVOY_ADMIN_PORT:-9901}/server_info") || exit 1
case $info in
*"\"restart_epoch\": ${RESTART_EPOCH:?},"*) ;;
*) exit 1 ;;
esac
case $info in
*'"state": "LIVE"'*) exit 0 ;;
*) exit 1 ;;
esac
