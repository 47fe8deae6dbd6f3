# Helpers of tests/compare/alternatives.sh (sourced, bash). Every wait is bounded.

now() { date +%s.%N; }
# Seconds between two `now` stamps, one decimal.
dt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# Run a command inside the container (all namespaces), or only in its network.
ct() { nsenter -t "$LEADER" -a "$@"; }
ctnet() { nsenter -t "$LEADER" -n "$@"; }

# tmux on the machine; each ssh client runs in a window of its own, with its network
# namespace the container's (the servers listen on the container's 127.0.0.1).
tm() { tmux -S "$TMUX_SOCK" "$@"; }
pane_text() { tm capture-pane -p -J -S -200 -t "$1" 2>/dev/null; }

# wait_text WINDOW REGEX SECONDS: until the pane shows REGEX (extended), bounded.
wait_text() {
    local i=0 n=$(( $3 * 10 ))
    while [ $i -lt $n ]; do
        pane_text "$1" | grep -Eq -- "$2" && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}

# ssh_open WINDOW USER PORT: an interactive password login in a tmux window; waits for
# the prompt and prints the machine's pid of the session's shell (from the container's
# pid the shell reports, through NSpid in /proc/PID/status).
ssh_open() {
    local win=$1 user=$2 port=$3 cpid hpid f ns
    tm new-window -d -n "$win" "nsenter -t $LEADER -n sshpass -p '$PASSWORD' ssh -tt -p $port \
        -o PubkeyAuthentication=no -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o LogLevel=ERROR $user@127.0.0.1"
    wait_text "$win" '\$ *$' 20 || die "$win: no prompt for $user on port $port: $(pane_text "$win" | tail -3)"
    tm send-keys -t "$win" 'echo SHELLPID=$$' Enter
    wait_text "$win" '^SHELLPID=[0-9]+' 10 || die "$win: no shell pid"
    cpid=$(pane_text "$win" | grep -Eo '^SHELLPID=[0-9]+' | tail -1 | cut -d= -f2)
    # Only in the container's pid namespace: other containers on the machine have the
    # same small pids.
    ns=$(readlink "/proc/$LEADER/ns/pid")
    for f in $(grep -l -P "^NSpid:\t[0-9]+\t$cpid\$" /proc/[0-9]*/status 2>/dev/null); do
        [ "$(readlink "${f%status}ns/pid" 2>/dev/null)" = "$ns" ] || continue
        [ "$(cat "${f%status}comm" 2>/dev/null)" = bash ] && hpid=${f#/proc/} && hpid=${hpid%/status}
    done
    [ -n "${hpid:-}" ] || die "$win: shell pid $cpid not found on the machine"
    echo "$hpid"
}

# client_pid USER PORT: the ssh client (sshpass's child) of a login, for SIGSTOP.
client_pid() { pgrep -f "^ssh -tt -p $2 .* $1@127.0.0.1\$" | head -1; }

# type_key WINDOW: one keystroke the way a user types a command: ':' and Enter.
type_key() { tm send-keys -t "$1" ':' Enter; }

# median of numbers on stdin
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
