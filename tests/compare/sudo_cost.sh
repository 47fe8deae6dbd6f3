# sudo's timestamp vs vigil's re-auth, and the cost per ssh login
# (tests/compare/alternatives.sh; sourced, bash).

# sudo_step WINDOW TAG: one `sudo true`; answers the password if asked. Prints "asked"
# or "not-asked" and the exit code.
sudo_step() {
    local w=$1 tag=$2 rc asked=not-asked at
    at=$(dt "$T0" "$(now)")
    tm send-keys -t "$w" "echo BEGIN-$tag; sudo -S -p 'ASK-$tag:' true; echo RC-$tag=\$?" Enter
    wait_text "$w" "^ASK-$tag:|RC-$tag=[0-9]" 10 || die "$w: sudo $tag did not answer"
    if pane_text "$w" | grep -q "^ASK-$tag:"; then
        asked=asked
        tm send-keys -t "$w" -l "$PASSWORD"
        tm send-keys -t "$w" Enter
        wait_text "$w" "RC-$tag=[0-9]" 10 || die "$w: sudo $tag did not finish"
    fi
    rc=$(pane_text "$w" | grep -Eo "RC-$tag=[0-9]+" | tail -1 | cut -d= -f2)
    echo "$asked at +$at s rc=$rc"
}

# Both users run the same steps at the same moments: sudo's timestamp (cmp-s1) and
# vigil (cmp-s2, reauth_window = REAUTH_WINDOW, reauth_after_idle = REAUTH_IDLE).
run_sudo() {
    local step i at what end typed plain vigil
    ssh_open sudo-plain cmp-s1 2201 >/dev/null
    ssh_open sudo-vigil cmp-s2 2202 >/dev/null
    T0=$(now)
    # step  at (s after the first)  what happens before it
    for step in "1 0 first" "2 3 active" "3 $((3 + REAUTH_IDLE + 4)) idle" \
        "4 $((REAUTH_WINDOW + 5)) active" "5 $((3 + REAUTH_IDLE + 4 + REAUTH_WINDOW + 2)) active" \
        "6 $((3 + REAUTH_IDLE + 4 + 2 * REAUTH_WINDOW + 10)) active"; do
        read -r i at what <<<"$step"
        # Before an "active" step the users type every 2 s; before "idle" nothing.
        end=$(awk -v a="$T0" -v b="$at" 'BEGIN { printf "%.3f", a + b }')
        typed=0
        while awk -v t="$(now)" -v e="$end" 'BEGIN { exit !(t < e) }'; do
            if [ "$what" = active ] && [ $((SECONDS - typed)) -ge 2 ]; then
                type_key sudo-plain; type_key sudo-vigil; typed=$SECONDS
            fi
            sleep 0.25
        done
        plain=$(sudo_step sudo-plain "p$i")
        vigil=$(sudo_step sudo-vigil "v$i")
        printf 'sudo step %s after %s: sudo timestamp: %s; vigil: %s\n' "$i" "$what" "$plain" "$vigil" |
            tee -a "$OUT/sudo.txt"
    done
    tm kill-window -t sudo-plain; tm kill-window -t sudo-vigil
}

# login_us PORT: wall time of one full ssh password login that runs `true`, in µs.
login_us() {
    local a b
    a=$(date +%s%N)
    timeout 30 nsenter -t "$LEADER" -n sshpass -p "$PASSWORD" ssh -p "$1" -o ConnectTimeout=10 \
        -o PubkeyAuthentication=no -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o LogLevel=ERROR cmp-c1@127.0.0.1 true || die "ssh login on $1 failed"
    b=$(date +%s%N)
    echo $(((b - a) / 1000))
}

# PAIRS rounds of three logins (base, +pam_systemd, +pam_vigil), the order rotated each
# round so that neither stack always follows the other; 3 rounds of warm-up first.
run_cost() {
    local r port
    for r in 1 2 3; do for port in 2200 2201 2202; do login_us $port >/dev/null; done; done
    : >"$OUT/cost.tsv"
    for r in $(seq "$PAIRS"); do
        case $((r % 3)) in
            0) set -- 2200 2201 2202 ;;
            1) set -- 2201 2202 2200 ;;
            2) set -- 2202 2200 2201 ;;
        esac
        for port in "$@"; do printf '%s\t%s\n' "$port" "$(login_us "$port")" >>"$OUT/cost.tsv"; done
    done
    for port in 2200 2201 2202; do
        awk -v p=$port '$1 == p { print $2 / 1000 }' "$OUT/cost.tsv" | median >"$OUT/cost-$port.median"
    done
    # Per round: what each module adds to that round's base login, in % (the median of
    # these is less sensitive to the machine's load drifting than a ratio of medians).
    for port in 2201 2202; do
        awk -v p=$port '{ v[NR] = $2; k[NR] = $1 } END {
            for (i = 1; i + 2 <= NR; i += 3) { b = x = 0
                for (j = i; j < i + 3; j++) { if (k[j] == 2200) b = v[j]; if (k[j] == p) x = v[j] }
                printf "%.2f\n", (x / b - 1) * 100 } }' "$OUT/cost.tsv" | sort -n >"$OUT/cost-$port.rounds"
        median <"$OUT/cost-$port.rounds" >"$OUT/cost-$port.added"
        awk '{ a[NR] = $1 } END { printf "%s to %s\n", a[int(NR / 4) + 1], a[int(3 * NR / 4) + 1] }' \
            "$OUT/cost-$port.rounds" >"$OUT/cost-$port.iqr"
    done
}
