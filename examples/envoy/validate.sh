#!/bin/sh
# hot-restarter --preflight: check the config the next epoch would load,
# without starting it. `envoy --mode validate` parses and validates the whole
# bootstrap (it binds no port and touches no shared memory) and exits 1 with
# the reason on a bad config; hot-restarter then skips the restart, the
# serving Envoy is not touched and the epoch number is not used up.
#
# Same environment as start_envoy.sh: ENVOY, ENVOY_CONFIG. `-l warning`
# keeps the info lines of every validation out of the log; the reason for a
# failure is logged at critical level.
exec "${ENVOY:-envoy}" --mode validate -l warning -c "${ENVOY_CONFIG:-/etc/envoy/envoy.yaml}"
