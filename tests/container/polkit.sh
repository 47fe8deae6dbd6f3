# Sourced by tests/container/run.sh (its ct, check, wait_for, root, leader, pw,
# tmux_sock): vigil's admin verbs delegated through the container's real polkitd, on
# its real system bus, with the package's org.vigil1.policy and the example rules file
# (docs/polkit.md). Users: ctadm (group vigil-admins), ctnoadm (no group), ctvict (whose
# session ctadm ends); polkit_prompt_check: ctcons (group sudo: an admin identity for
# polkit) on its console login, asked through pkttyagent on that terminal.

# Each line of vigild's records holding all of PATTERNS (grep -e ... in turn).
records_with() { # PATTERN...
    out=$(ct journalctl -t vigild -o cat --no-pager)
    for p in "$@"; do out=$(printf '%s\n' "$out" | grep -e "$p") || return 1; done
    printf '%s\n' "$out"
}
as_user() { # USER COMMAND...: without a terminal, as runuser gives it
    u=$1; shift
    timeout 30 nsenter -t "$leader" -a runuser -u "$u" -- "$@"
}
listed_by() { # USER SESSION: USER's `vigilctl list` shows SESSION
    as_user "$1" vigilctl list | awk -v id="$2" '$1 == id' | grep -q .
}
not_listed_by() { # USER SESSION: USER's `vigilctl list` answers, without SESSION
    as_user "$1" vigilctl list >/dev/null && ! listed_by "$@"
}
refused() { # USER OUT COMMAND...: the command, run as USER, fails; its output in OUT
    u=$1; o=$2; shift 2
    ! as_user "$u" "$@" >"$o" 2>&1
}
says() { # OUT TEXT
    grep -qF -- "$2" "$1"
}
# USER's terminate of a session that does not exist: "polkit did not authorize" once
# polkitd read a rule that says no (with a yes, vigild would answer "no session").
polkit_says_no_to() { # USER
    refused "$1" "$VIGIL_CT_DIR/polkit.no" vigilctl --no-ask-password terminate 999999 && \
        says "$VIGIL_CT_DIR/polkit.no" "polkit did not authorize org.vigil1.terminate-session"
}

polkit_checks() {
    ct sh -c "groupadd -f vigil-admins && useradd -m -u 59705 -s /bin/bash -G vigil-admins ctadm && \
        useradd -m -u 59706 -s /bin/bash ctnoadm && useradd -m -u 59707 -s /bin/bash ctvict && printf 'ctvict:$pw\n' | chpasswd"
    check "polkitd knows vigil's actions (org.vigil1.policy)" sh -c \
        "nsenter -t $leader -a pkaction --verbose --action-id org.vigil1.terminate-session | grep -q 'implicit active: *auth_admin_keep'"
    out=$VIGIL_CT_DIR/polkit.held
    timeout 120 nsenter -t "$leader" -n sshpass -p "$pw" ssh -p 22 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o PubkeyAuthentication=no -o LogLevel=ERROR ctvict@127.0.0.1 'echo "$VIGIL_SESSION_ID"; exec sleep 110' >"$out" 2>&1 &
    victim_pid=$!
    wait_for 100 test -s "$out" || true
    read -r pid_vict <"$out" || true
    check "ctvict's ssh session is registered (${pid_vict:-none})" test -n "${pid_vict:-}"

    # Without the rules file: polkit's defaults want an admin's password; asked for
    # nothing (no terminal, --no-ask-password), the verb is refused and recorded.
    t=$VIGIL_CT_DIR/polkit.noadm
    check "ctnoadm: vigilctl terminate is refused" refused ctnoadm "$t" vigilctl --no-ask-password terminate "$pid_vict"
    check "... with a clear message ($(tr '\n' ' ' <"$t" | cut -c1-160))" says "$t" "permission denied: TerminateSession: an admin's password is needed for org.vigil1.terminate-session"
    check "... recorded call_refused reason=not_authorized" wait_for 25 records_with 'event=call_refused ' 'method=TerminateSession' 'uid=59706' 'reason=not_authorized'
    check "... and the session lives" sh -c "nsenter -t $leader -a vigilctl show $pid_vict >/dev/null"
    check "ctnoadm's vigilctl list shows only their own sessions" not_listed_by ctnoadm "$pid_vict"

    # With the example rules file: the group's members list and terminate, no password.
    cp "$root/usr/share/doc/vigil/examples/50-vigil-admins.rules" "$root/etc/polkit-1/rules.d/50-vigil-admins.rules"
    check "ctadm (vigil-admins) lists every session once polkitd read the rules" wait_for 100 listed_by ctadm "$pid_vict"
    check "ctnoadm still does not" not_listed_by ctnoadm "$pid_vict"
    check "ctadm: vigilctl terminate works without a password" as_user ctadm vigilctl --no-ask-password terminate "$pid_vict"
    check "... the session ended, recorded by=ctadm by_uid=59705" wait_for 25 records_with "event=session_end session=$pid_vict " 'reason=admin' 'by=ctadm' 'by_uid=59705'
    check "... and its ssh client is gone" wait_for 50 sh -c "! kill -0 $victim_pid 2>/dev/null"
    t=$VIGIL_CT_DIR/polkit.adm-reload
    check "ctadm: reload keeps polkit's default (refused without a password)" refused ctadm "$t" vigilctl --no-ask-password reload
    check "... recorded call_refused method=Reload uid=59705" wait_for 25 records_with 'event=call_refused ' 'method=Reload' 'uid=59705' 'reason=not_authorized'

    # Root is never asked: with a rule that refuses vigil's actions to everyone, root's
    # verbs on the system bus still go through (a question to polkit would be a no).
    printf 'polkit.addRule(function(action, subject) {\n    if (action.id.indexOf("org.vigil1.") == 0) return polkit.Result.NO;\n});\n' \
        >"$root/etc/polkit-1/rules.d/00-vigil-test-deny.rules"
    check "polkitd read a rule that says no to vigil's actions for everyone" wait_for 100 polkit_says_no_to ctadm
    check "root's reload on the system bus goes through" ct vigilctl --bus unix:path=/run/dbus/system_bus_socket reload
    check "... recorded by=root by_uid=0" wait_for 25 records_with 'event=config_reload ' 'trigger=dbus' 'by=root' 'by_uid=0'
    rm -f "$root/etc/polkit-1/rules.d/00-vigil-test-deny.rules" "$root/etc/polkit-1/rules.d/50-vigil-admins.rules"
    kill "$victim_pid" 2>/dev/null || true
}

# In ctcons's console login (run.sh's pane, keys and after): `vigilctl reload` runs
# pkttyagent for the login session, polkit asks on the terminal (auth_admin_keep: the
# active local admin), the reload is done and recorded as ctcons's. The password is
# typed when asked: polkit's PAM service polkit-1 includes vigil-reauth here, and a
# proof of identity that is still fresh answers for it.
polkit_prompt_check() {
    keys "echo MARKPK; vigilctl reload; echo PKRC=\$?" Enter
    wait_for 100 sh -c "tmux -L $tmux_sock capture-pane -p -J -S -300 -t cons | awk 'index(\$0, \"MARKPK\") { s = 1 } s' | grep -q -e 'Password:' -e 'PKRC=[0-9]'" || true
    if after MARKPK | grep -q 'Password:'; then
        sleep 0.5
        keys "$pw" Enter
    fi
    wait_for 100 sh -c "tmux -L $tmux_sock capture-pane -p -J -S -300 -t cons | grep -q 'PKRC=[0-9]'" || true
    check "vigilctl reload on ctcons's terminal: pkttyagent shows polkit's request for org.vigil1.reload" sh -c \
        "tmux -L $tmux_sock capture-pane -p -J -S -300 -t cons | grep -q 'AUTHENTICATING FOR org.vigil1.reload'"
    check "... and the reload is done (PKRC=0)" sh -c "tmux -L $tmux_sock capture-pane -p -J -S -300 -t cons | grep -q 'PKRC=0'"
    check "... recorded config_reload by=ctcons by_uid=59702" wait_for 25 records_with 'event=config_reload ' 'trigger=dbus' 'by=ctcons' 'by_uid=59702'
}
