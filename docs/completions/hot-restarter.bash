_hot__restarter() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="hot__restarter"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        hot__restarter)
            opts="-h -V --term-wait --drain-on-stop --pid-file --preflight --preflight-timeout --keep-serving --ready-check --ready-timeout --ready-interval --hold-while-draining --envoy-admin --handoff-admin --envoy-bin --control-socket --subreaper --watch --watch-debounce --log-format --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --term-wait)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --drain-on-stop)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --pid-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --preflight)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --preflight-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --ready-check)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --ready-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --ready-interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --hold-while-draining)
                    COMPREPLY=($(compgen -W "true false" -- "${cur}"))
                    return 0
                    ;;
                --envoy-admin)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --handoff-admin)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --envoy-bin)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --control-socket)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --watch)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --watch-debounce)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --log-format)
                    COMPREPLY=($(compgen -W "text json" -- "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _hot__restarter -o nosort -o bashdefault -o default hot-restarter
else
    complete -F _hot__restarter -o bashdefault -o default hot-restarter
fi
