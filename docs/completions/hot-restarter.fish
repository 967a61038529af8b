complete -c hot-restarter -l term-wait -d 'Seconds to wait for children to exit after SIGTERM before killing them (the Python wrapper\'s fixed TERM_WAIT_SECONDS)' -r
complete -c hot-restarter -l drain-on-stop -d 'On SIGTERM, SIGINT or `stop`, first drain the serving Envoys for up to SECONDS (POST /healthcheck/fail and /drain_listeners?graceful, then wait until no request is in flight), then stop them as usual. Needs --envoy-admin' -r
complete -c hot-restarter -l pid-file -d 'Write the wrapper\'s pid to PATH (atomically) at start; remove it at exit' -r -F
complete -c hot-restarter -l preflight -d 'Run SCRIPT before every restart (not the first start), with the new RESTART_EPOCH set; if it fails or times out the restart is skipped' -r -F
complete -c hot-restarter -l preflight-timeout -d 'Seconds the preflight script may run before it is killed and the restart skipped' -r
complete -c hot-restarter -l ready-check -d 'After starting an epoch, run SCRIPT until it exits 0; SIGHUPs that arrive meanwhile are held and coalesced into one restart' -r -F
complete -c hot-restarter -l ready-timeout -d 'Seconds an epoch may take to pass the ready check; longer is a failed restart' -r
complete -c hot-restarter -l ready-interval -d 'Seconds between two readiness checks [default: 0.1, or 0.02 with --envoy-admin]' -r
complete -c hot-restarter -l hold-while-draining -d 'Hold SIGHUPs (coalesced into one restart) while an older epoch is still draining: Envoy cuts off a draining epoch when the epoch after next starts [default: on with --envoy-admin, else off; --hold-while-draining=false turns it off]' -r -f -a "true\t''
false\t''"
complete -c hot-restarter -l envoy-admin -d 'Envoy\'s admin address (IPv4:PORT, [IPv6]:PORT or an absolute unix socket path): an epoch is ready once its /server_info says LIVE for that epoch; SIGHUPs wait and coalesce until then' -r
complete -c hot-restarter -l handoff-admin -d 'A second admin address for side-by-side handoff: generation g of Envoy uses slot g % 2 (slot 0 --envoy-admin, slot 1 this one); SIGUSR2 hands off to a new generation. Needs --envoy-admin' -r
complete -c hot-restarter -l envoy-bin -d 'The Envoy binary the start script runs: when its --hot-restart-version differs from the running Envoy\'s, a reload becomes a handoff. Needs --handoff-admin' -r -F
complete -c hot-restarter -l control-socket -d 'Serve hot-restarter-ctl on a unix socket at PATH (mode 0600; a stale socket file is replaced, anything else there is an error)' -r -F
complete -c hot-restarter -l watch -d 'Reload (as SIGHUP does) when the contents of PATH change, however they are changed: written in place, renamed over, or a Kubernetes ConfigMap/Secret symlink swap. Repeatable; the environment variable takes a \':\'-separated list. PATH\'s directory must exist' -r -F
complete -c hot-restarter -l watch-debounce -d 'Seconds without a further change of a watched file before it is looked at (a burst of writes is one reload; at most 10 times this after the first change)' -r
complete -c hot-restarter -l log-format -d 'The wrapper\'s log lines: text (the Python wrapper\'s) or json (one object per line with pilot-agent\'s keys time, level, scope, msg, caller, and pid)' -r -f -a "text\t'The Python wrapper\'s lines'
json\t'One JSON object per line'"
complete -c hot-restarter -l keep-serving -d 'A child that fails while another child still runs does not bring the others down: it is logged as a failed restart and the epoch is reused'
complete -c hot-restarter -l subreaper -d 'Become a child subreaper, so that processes orphaned below the start script are re-parented to the wrapper and reaped by it'
complete -c hot-restarter -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hot-restarter -s V -l version -d 'Print version'
