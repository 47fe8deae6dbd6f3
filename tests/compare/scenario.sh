# The idle scenarios of tests/compare/alternatives.sh (sourced, bash).
#
# A scenario is a set of ssh sessions, each "WINDOW USER PORT KIND OFFSET":
#   idle     the user types (': N' Enter, N counting, about twice a second) until
#            START+8+OFFSET, then nothing. Its last key is the last one its shell echoed
#            (on a loaded machine a key sent is not yet a key read).
#   partial  the user types characters (about two a second) without Enter, until START+8+OFFSET
#   output   runs `while :; do date; sleep 1; done` and is never touched again
#   cat      runs `cat` (a program waiting for input) and is never touched again
#   escape   `unset TMOUT`, then `exec env -u TMOUT bash` (how a user sheds a readonly TMOUT)
#   stopped  like idle, then the ssh client is stopped (SIGSTOP): a dead peer (its "last
#            key" is then the moment it stopped)
# Each session's end is seen on the machine: its shell's pid leaves /proc (0.1 s steps).

declare -A S_USER S_PORT S_KIND S_OFF S_PID S_LAST S_END

run_scenario() { # NAME SPEC...
    local name=$1 spec w u p k o start t stop maxstop=0 deadline left
    shift
    local wins=()
    for spec in "$@"; do
        read -r w u p k o <<<"$spec"
        wins+=("$w")
        S_USER[$w]=$u; S_PORT[$w]=$p; S_KIND[$w]=$k; S_OFF[$w]=$o; S_END[$w]=
        S_PID[$w]=$(ssh_open "$w" "$u" "$p")
        tm send-keys -t "$w" 'clear' Enter
        # Logins take seconds on a loaded machine: the sessions already open get a key
        # each, so that none is idle before the scenario starts.
        for o in "${wins[@]}"; do [ "$o" = "$w" ] || tm send-keys -t "$o" ': 0' Enter; done
    done
    log "$name: ${#wins[@]} sessions logged in"
    sleep 1
    for w in "${wins[@]}"; do
        case ${S_KIND[$w]} in
            output) tm send-keys -t "$w" 'while :; do date; sleep 1; done' Enter ;;
            cat) tm send-keys -t "$w" 'cat' Enter ;;
            escape) tm send-keys -t "$w" 'unset TMOUT; exec env -u TMOUT bash' Enter ;;
        esac
        S_LAST[$w]=$(now)
    done
    start=$(now)
    for w in "${wins[@]}"; do
        case ${S_KIND[$w]} in idle | partial | stopped)
            stop=$(awk -v s="$start" -v o="${S_OFF[$w]}" 'BEGIN { printf "%.3f", s + 8 + o }')
            S_STOP[$w]=$stop
            maxstop=$(awk -v a="$maxstop" -v b="$stop" 'BEGIN { printf "%.3f", (b > a) ? b : a }') ;;
        esac
    done
    # The users type: every active session once a second until its stop time; bounded
    # by the latest stop time.
    while t=$(now); awk -v t="$t" -v m="$maxstop" 'BEGIN { exit !(t < m) }'; do
        for w in "${wins[@]}"; do
            [ -n "${S_STOP[$w]:-}" ] || continue
            if awk -v t="$(now)" -v s="${S_STOP[$w]}" 'BEGIN { exit !(t < s) }'; then
                if [ "${S_KIND[$w]}" = partial ]; then
                    tm send-keys -t "$w" x
                    S_LAST[$w]=$(now)
                else
                    S_N[$w]=$((${S_N[$w]:-0} + 1))
                    tm send-keys -t "$w" ": ${S_N[$w]}" Enter
                    S_AT[$w,${S_N[$w]}]=$(now)
                    S_LAST[$w]=${S_AT[$w,${S_N[$w]}]}
                fi
            elif [ "${S_KIND[$w]}" = stopped ] && [ -z "${S_STOPPED[$w]:-}" ]; then
                S_STOPPED[$w]=$(client_pid "${S_USER[$w]}" "${S_PORT[$w]}")
                [ -n "${S_STOPPED[$w]}" ] || die "$w: no ssh client to stop"
                kill -STOP "${S_STOPPED[$w]}"
                S_LAST[$w]=$(now) # its last sign of life
            fi
        done
        sleep 0.5
    done
    for w in "${wins[@]}"; do
        if [ "${S_KIND[$w]}" = stopped ] && [ -z "${S_STOPPED[$w]:-}" ]; then
            S_STOPPED[$w]=$(client_pid "${S_USER[$w]}" "${S_PORT[$w]}")
            kill -STOP "${S_STOPPED[$w]}"
        fi
    done
    # Watch until every session ended or T + 15 s after the last key of all.
    deadline=$(awk -v m="$(now)" -v t="$T" 'BEGIN { printf "%.3f", m + t + 15 }')
    while t=$(now); awk -v t="$t" -v d="$deadline" 'BEGIN { exit !(t < d) }'; do
        left=0
        for w in "${wins[@]}"; do
            [ -z "${S_END[$w]}" ] || continue
            if [ -d "/proc/${S_PID[$w]}" ]; then left=$((left + 1)); else S_END[$w]=$t; fi
        done
        [ $left -gt 0 ] || break
        sleep 0.1
    done
    for w in "${wins[@]}"; do
        if [ -n "${S_STOPPED[$w]:-}" ]; then kill -CONT "${S_STOPPED[$w]}" 2>/dev/null || true; fi
    done
    sleep 1
    for w in "${wins[@]}"; do report_session "$w"; done
}

declare -A S_STOP S_STOPPED S_N S_AT

# One line per session: what it did, when it ended after its last key, what its
# terminal showed at the end.
report_session() {
    local w=$1 ended shown seen keys=""
    if [ -n "${S_N[$w]:-}" ]; then
        seen=$(pane_text "$w" | grep -Eo '\$ : [0-9]+ *$' | awk '{ print $3 }' | sort -n | tail -1)
        keys="keys sent ${S_N[$w]}, last echoed ${seen:-none}"
        if [ "${S_KIND[$w]}" = idle ] && [ -n "${S_AT[$w,${seen:-none}]:-}" ]; then S_LAST[$w]=${S_AT[$w,$seen]}; fi
    fi
    if [ -n "${S_END[$w]}" ]; then ended="ended $(dt "${S_LAST[$w]}" "${S_END[$w]}") s after the last key"
    else ended="alive $(dt "${S_LAST[$w]}" "$(now)") s after the last key"; fi
    shown=$(pane_text "$w" | grep -Ei 'vigil:|timed out|auto-logout|closed|readonly|broken pipe|timeout' | tr '\n' '|' | cut -c1-200)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "${S_USER[$w]}" "${S_KIND[$w]}" "$ended" "${shown:--}" "$keys" |
        tee -a "$OUT/sessions.tsv"
    tm kill-window -t "$w" 2>/dev/null || true
}
