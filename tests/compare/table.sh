# The table of tests/compare/alternatives.sh (sourced, bash): markdown built from the
# raw results in $OUT. Cells in words are what the scenarios showed; figures are this
# run's.

# ended WINDOW...: "ended N s" / "alive after N s" of each window, comma-separated.
ended() {
    local w out=()
    for w in "$@"; do
        out+=("$(awk -F'\t' -v w="$w" '$1 == w {
            if ($4 ~ /^ended/) { split($4, a, " "); print a[2] " s" }
            else { split($4, a, " "); print "not ended (" a[2] " s)" } }' "$OUT/sessions.tsv")")
    done
    local IFS=,
    echo "${out[*]}" | sed 's/,/, /g'
}
shown() { awk -F'\t' -v w="$1" '$1 == w { print $5 }' "$OUT/sessions.tsv" | cut -d'|' -f1; }
step() { grep "^sudo step $1 " "$OUT/sudo.txt" | sed -E "s/.*$2: (asked|not-asked).*/\1/"; }
cost() { [ -f "$OUT/cost-$1.added" ] && printf '%s %% (middle half of the rounds: %s %%)' "$(cat "$OUT/cost-$1.added")" "$(cat "$OUT/cost-$1.iqr")" || echo "?"; }
# sshd's log line about USER, or "none".
sshd_said() {
    local l
    l=$(grep -m1 "$1" "$OUT/sshd.log" 2>/dev/null | sed 's/ port [0-9]*//')
    echo "${l:-none (only the usual session close)}"
}

print_table() {
    local have=" "
    [ -s "$OUT/sessions.tsv" ] && have="$have$(grep -q '^ld-' "$OUT/sessions.tsv" && echo logind) $(grep -q '^vg-' "$OUT/sessions.tsv" && echo others) "
    echo
    sed 's/^/    /' "$OUT/facts.txt"
    echo
    echo "Idle timeout ${T} s everywhere; \"after the last key\": when the session's shell was gone, measured from the"
    echo "last keystroke (for a dead client: from the moment it stopped answering). Three idle sessions per"
    echo "mechanism end their typing at different points of the tty's 8-second atime grain."
    echo
    echo "| | ends | idle session ended, after the last key | output-only session (\`while :; do date; sleep 1; done\`) | warning before | record | who can switch it off | cost per ssh login |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    case $have in *" logind "*)
        echo "| logind \`StopIdleSessionSec=${T}\` | the whole session (its scope) | $(ended ld-1 ld-2 ld-3) (tty atime, 8 s grain: early) | ended: $(ended ld-out) after its last key | none (\"$(shown ld-1)\") | journal: $(head -1 "$OUT/logind.log" 2>/dev/null | cut -c1-80 || echo none) | root (logind.conf) | $(cost 2201) (pam_systemd) |" ;;
    esac
    case $have in *" others "*)
        echo "| bash \`TMOUT=${T}\` (readonly, /etc/profile.d) | the shell, only while it waits at its prompt | $(ended tm-idle); a line typed without Enter: $(ended tm-partial) (counts from the prompt) | $(ended tm-out); nor \`cat\` waiting for input: $(ended tm-cat) | none; at the end \"$(shown tm-idle)\" | none | the user: readonly refuses \`unset\`, but \`exec env -u TMOUT bash\` escapes: $(ended tm-escape) | none (no PAM module) |"
        echo "| sshd \`ChannelTimeout session:*=${T}s\` | the channel (the connection with it) | $(ended ch-idle) (traffic in either direction counts) | $(ended ch-out) | none | $(sshd_said cmp-h1) | root (sshd_config) | none |"
        echo "| sshd \`ClientAliveInterval 2\`, \`ClientAliveCountMax 3\` | connections whose client stopped answering | idle user, client alive: $(ended ca-idle); client stopped (SIGSTOP): $(ended ca-dead) after it stopped | not ended | none | sshd: $(sshd_said cmp-a2) | root (sshd_config) | none |"
        echo "| vigil \`idle_timeout=${T}s\`, \`idle_warning=${WARN}s\` | every process of the session | $(ended vg-1 vg-2 vg-3) (inotify on the tty: each key) | \`output_is_activity=false\`: ended, $(ended vg-out); \`true\`: $(ended vg-out-counts) | on every tty of the session ${WARN} s before: \"$(shown vg-1)\" | \`idle_warning\`, \`session_end reason=idle\` (hash-chained, syslog) | root (vigil.toml, per policy); the user only for \`max_inhibit\` with an audited \`vigilctl inhibit\` | $(cost 2202) (pam_vigil) |" ;;
    esac
    if [ -s "$OUT/sudo.txt" ]; then
        echo
        echo "sudo's own timestamp (\`timestamp_timeout\` = ${REAUTH_WINDOW} s, tty) against vigil's re-authentication (\`reauth_window=${REAUTH_WINDOW}s\`, \`reauth_after_idle=${REAUTH_IDLE}s\`), the same steps at the same moments:"
        echo
        echo "| sudo step | what the user did before | sudo's timestamp (time since step 1) | vigil (time since step 1) |"
        echo "| --- | --- | --- | --- |"
        sed -E 's/^sudo step ([0-9]+) after ([a-z]+): sudo timestamp: ([a-z-]+) at \+([0-9.]+) s rc=[0-9]+; vigil: ([a-z-]+) at \+([0-9.]+) s rc=[0-9]+$/| \1 | \2 | \3 (+\4 s) | \5 (+\6 s) |/' "$OUT/sudo.txt" |
            sed -e 's/| first |/| (first) |/' -e 's/| active |/| typing every 2 s |/' -e 's/| idle |/| no key since the last step |/'
    fi
    if [ -f "$OUT/cost-2200.median" ]; then
        echo
        echo "Cost per login: full ssh password login running \`true\` (sshpass, client in the container's network), $PAIRS rounds"
        echo "of three logins (base stack, base + pam_systemd, base + pam_vigil), order rotated each round, after 3 warm-up rounds."
        echo "Medians: base $(cat "$OUT/cost-2200.median") ms, +pam_systemd $(cat "$OUT/cost-2201.median") ms, +pam_vigil $(cat "$OUT/cost-2202.median") ms;"
        echo "added to the same round's base login (median of the rounds): pam_systemd $(cost 2201), pam_vigil $(cost 2202)."
    fi
}
