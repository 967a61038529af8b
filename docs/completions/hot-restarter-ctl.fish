# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_hot_restarter_ctl_global_optspecs
    string join \n socket= h/help V/version
end

function __fish_hot_restarter_ctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_hot_restarter_ctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_hot_restarter_ctl_using_subcommand
    set -l cmd (__fish_hot_restarter_ctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_needs_command" -l socket -d 'The wrapper\'s control socket (its --control-socket)' -r -F
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_needs_command" -s h -l help -d 'Print help'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_needs_command" -s V -l version -d 'Print version'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_needs_command" -f -a "status" -d 'Print the wrapper\'s pid, phase, uptime, children, last reload and counters'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_needs_command" -f -a "check" -d 'Exit 0 while a ready child serves (also while a reload is under way), 1 with the reason while none does or the wrapper is stopping: for exec probes (Kubernetes, monit, runit\'s check)'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_needs_command" -f -a "reload" -d 'Hot restart: start the next epoch (SIGHUP)'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_needs_command" -f -a "handoff" -d 'Start a new generation beside the serving one (needs --handoff-admin)'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_needs_command" -f -a "reopen-logs" -d 'Every child reopens its logs (SIGUSR1)'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_needs_command" -f -a "stop" -d 'Graceful shutdown (SIGTERM). With --wait, return once the wrapper has stopped every child and is exiting'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_needs_command" -f -a "reexec" -d 'Upgrade the wrapper itself: it executes the binary at the path it was started from, read afresh from disk, keeping its pid, its children (Envoy is not touched) and its state. With --wait, return once the new binary has taken over; exit 1 with the reason when the new binary is refused (the old one stays in charge)'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_needs_command" -f -a "start" -d 'Start hot-restarter detached (own session, output to --log), and return once it answers on the socket with a child running'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand status" -l socket -d 'The wrapper\'s control socket (its --control-socket)' -r -F
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand status" -l json -d 'As the JSON object the wrapper sent'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand status" -l prometheus -d 'As Prometheus text (for node_exporter\'s textfile collector); prints hot_restarter_up 0 when the wrapper is not running'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand check" -l timeout -d 'Bound on the exchange (default 10 s)' -r
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand check" -l socket -d 'The wrapper\'s control socket (its --control-socket)' -r -F
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand check" -s h -l help -d 'Print help'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand reload" -l timeout -d 'Bound on the whole exchange (default 10 s; with --wait 120 s, for stop 40 s)' -r
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand reload" -l socket -d 'The wrapper\'s control socket (its --control-socket)' -r -F
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand reload" -l wait -d 'Return when the operation has finished, with its result'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand reload" -s h -l help -d 'Print help'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand handoff" -l timeout -d 'Bound on the whole exchange (default 10 s; with --wait 120 s, for stop 40 s)' -r
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand handoff" -l socket -d 'The wrapper\'s control socket (its --control-socket)' -r -F
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand handoff" -l wait -d 'Return when the operation has finished, with its result'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand handoff" -s h -l help -d 'Print help'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand reopen-logs" -l socket -d 'The wrapper\'s control socket (its --control-socket)' -r -F
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand reopen-logs" -s h -l help -d 'Print help'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand stop" -l timeout -d 'Bound on the whole exchange (default 10 s; with --wait 120 s, for stop 40 s)' -r
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand stop" -l socket -d 'The wrapper\'s control socket (its --control-socket)' -r -F
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand stop" -l wait -d 'Return when the operation has finished, with its result'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand stop" -s h -l help -d 'Print help'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand reexec" -l timeout -d 'Bound on the whole exchange (default 10 s; with --wait 120 s, for stop 40 s)' -r
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand reexec" -l socket -d 'The wrapper\'s control socket (its --control-socket)' -r -F
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand reexec" -l wait -d 'Return when the operation has finished, with its result'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand reexec" -s h -l help -d 'Print help'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand start" -l log -d 'Append the wrapper\'s (and the children\'s) output to FILE (default: /dev/null)' -r -F
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand start" -l timeout -d 'Give up after SECONDS (the wrapper is left running)' -r
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand start" -l socket -d 'The wrapper\'s control socket (its --control-socket)' -r -F
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand start" -s h -l help -d 'Print help'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand help; and not __fish_seen_subcommand_from status check reload handoff reopen-logs stop reexec start help" -f -a "status" -d 'Print the wrapper\'s pid, phase, uptime, children, last reload and counters'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand help; and not __fish_seen_subcommand_from status check reload handoff reopen-logs stop reexec start help" -f -a "check" -d 'Exit 0 while a ready child serves (also while a reload is under way), 1 with the reason while none does or the wrapper is stopping: for exec probes (Kubernetes, monit, runit\'s check)'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand help; and not __fish_seen_subcommand_from status check reload handoff reopen-logs stop reexec start help" -f -a "reload" -d 'Hot restart: start the next epoch (SIGHUP)'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand help; and not __fish_seen_subcommand_from status check reload handoff reopen-logs stop reexec start help" -f -a "handoff" -d 'Start a new generation beside the serving one (needs --handoff-admin)'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand help; and not __fish_seen_subcommand_from status check reload handoff reopen-logs stop reexec start help" -f -a "reopen-logs" -d 'Every child reopens its logs (SIGUSR1)'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand help; and not __fish_seen_subcommand_from status check reload handoff reopen-logs stop reexec start help" -f -a "stop" -d 'Graceful shutdown (SIGTERM). With --wait, return once the wrapper has stopped every child and is exiting'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand help; and not __fish_seen_subcommand_from status check reload handoff reopen-logs stop reexec start help" -f -a "reexec" -d 'Upgrade the wrapper itself: it executes the binary at the path it was started from, read afresh from disk, keeping its pid, its children (Envoy is not touched) and its state. With --wait, return once the new binary has taken over; exit 1 with the reason when the new binary is refused (the old one stays in charge)'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand help; and not __fish_seen_subcommand_from status check reload handoff reopen-logs stop reexec start help" -f -a "start" -d 'Start hot-restarter detached (own session, output to --log), and return once it answers on the socket with a child running'
complete -c hot-restarter-ctl -n "__fish_hot_restarter_ctl_using_subcommand help; and not __fish_seen_subcommand_from status check reload handoff reopen-logs stop reexec start help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
