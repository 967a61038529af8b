#!/bin/sh
# Export hot-restarter's status to node_exporter's textfile collector:
# `hot-restarter-ctl status --prometheus`, written to a temporary file in
# the collector's directory and renamed over hot-restarter.prom, so that
# node_exporter never reads a half-written file.
#
#   textfile.sh [DIR]                   once (for a systemd timer or cron)
#   textfile.sh --every SECONDS [DIR]   in a loop
#
# DIR: node_exporter's --collector.textfile.directory (default
# /var/lib/prometheus/node-exporter, Debian's). The socket comes from
# HOT_RESTARTER_CONTROL_SOCKET (default /run/hot-restarter/control.sock);
# hot-restarter-ctl from HOT_RESTARTER_CTL (default: on PATH). When the
# wrapper does not answer, the file says hot_restarter_up 0.
set -eu
every=
if [ "${1:-}" = --every ]; then
  every=$2
  shift 2
fi
dir=${1:-/var/lib/prometheus/node-exporter}
ctl=${HOT_RESTARTER_CTL:-hot-restarter-ctl}
export HOT_RESTARTER_CONTROL_SOCKET="${HOT_RESTARTER_CONTROL_SOCKET:-/run/hot-restarter/control.sock}"

write() {
  tmp="$dir/.hot-restarter.prom.$$"
  # Exit 3 (not running) still prints hot_restarter_up 0: keep that too.
  rc=0
  "$ctl" status --prometheus > "$tmp" || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ] || [ ! -s "$tmp" ]; then
    printf '# HELP hot_restarter_up 1 if the wrapper answered on its control socket.\n# TYPE hot_restarter_up gauge\nhot_restarter_up 0\n' > "$tmp"
  fi
  chmod 0644 "$tmp"
  mv -f "$tmp" "$dir/hot-restarter.prom"
}

if [ -z "$every" ]; then
  write
  exit 0
fi
trap 'rm -f "$dir/.hot-restarter.prom.$$"; exit 0' INT TERM
while :; do
  write
  sleep "$every"
done
