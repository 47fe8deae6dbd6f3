# Sourced by tests/container/run.sh (its ct, check, wait_for, ssh_as, root, leader, pw):
# the profiles vigil and vigil-lock as pam-auth-update writes them into the container's
# own common-auth and common-account (never the machine's), and what they do through
# the stock /etc/pam.d/sudo and /etc/pam.d/sshd.

# A PAM file's rules, one a line, without its stage word, comments or blank lines.
stack_rules() { # FILE
    grep -v '^[[:space:]]*#' "$1" | awk 'NF { $1 = ""; sub(/^ /, ""); print }'
}

# common-auth: the authfail line is the last of the Primary block (just before
# pam_deny), changes no decision ([default=ignore]), and every Primary module's
# success jump still lands on pam_permit, past it: a correct password never reaches it.
authfail_placed() {
    stack_rules "$root/etc/pam.d/common-auth" | awk '
        { rule[NR] = $0 }
        /pam_vigil\.so authfail/ { at = NR }
        END {
            if (!at || rule[at] !~ /^\[default=ignore\] / || rule[at + 1] !~ /^requisite pam_deny\.so/) exit 1
            for (i = 1; i < at; i++)
                if (match(rule[i], /success=[0-9]+/) && rule[i + substr(rule[i], RSTART + 8, RLENGTH - 8) + 1] !~ /^required pam_permit\.so/) exit 1
        }'
}

# common-account: the lock check opens the Additional block, right after pam_permit,
# before any "sufficient" module of another profile (sssd's pam_localuser) could end it.
lock_check_placed() {
    stack_rules "$root/etc/pam.d/common-account" | awk '
        prev ~ /^required pam_permit\.so/ && /^\[perm_denied=die default=ignore\] pam_vigil\.so *$/ { found = 1 }
        { prev = $0 }
        END { exit !found }'
}

# Every reauth_failed record so far, vigild's and the module's own.
reauth_failures() {
    ct journalctl -t vigild -t pam_vigil -o cat --no-pager | grep 'event=reauth_failed ' || true
}

# sudo run by ctcons (a member of group sudo) with PASSWORD on its standard input,
# through the stock /etc/pam.d/sudo (common-auth, common-account); -k: always asked.
sudo_with() { # PASSWORD
    ct timeout 30 runuser -u ctcons -- sh -c "printf '%s\n' '$1' | sudo -S -k -p '' true" >/dev/null 2>&1
}

# A command that must fail (its output dropped).
fails() { ! "$@" >/dev/null 2>&1; }
sudo_failure_recorded() { reauth_failures | grep -Eq 'service=sudo( |$)'; }
sshd_failure_recorded() { reauth_failures | grep -Eq 'service=sshd( |$)'; }
noninteractive_left_alone() {
    [ "$(grep -c pam_vigil.so "$root/etc/pam.d/common-session")" = 1 ] && ! grep -q pam_vigil.so "$root/etc/pam.d/common-session-noninteractive"
}

pam_stack_checks() {
    check "pam-auth-update: common-auth has vigil's authfail line last in the Primary block, every success jump past it" authfail_placed
    check "pam-auth-update: common-account has the lock check first in the Additional block" lock_check_placed
    check "pam-auth-update: vigil once in common-session, never in common-session-noninteractive (cron, systemd --user)" noninteractive_left_alone
    # A wrong password of sshd's first: sshd runs PAM as root, and a password typed at
    # a login is no re-authentication. The sudo failure after it is recorded after it.
    check "ssh with a wrong password is refused" fails ssh_as ctssh "wrong-$pw" true
    before=$(reauth_failures | wc -l)
    check "sudo with a wrong password fails" fails sudo_with "wrong-$pw"
    check "... and leaves reauth_failed (reauth_service=sudo) in the journal" wait_for 25 sudo_failure_recorded
    echo "container: reauth_failed records for one wrong sudo password: $(( $(reauth_failures | wc -l) - before ))"
    check "... and the wrong ssh password left none (sshd runs as root: not a re-authentication)" fails sshd_failure_recorded
    failed=$(reauth_failures | wc -l)
    check "sudo with the right password succeeds through common-auth and common-account" sudo_with "$pw"
    check "... and records no failure" test "$(reauth_failures | wc -l)" = "$failed"
}

# ---- locks through common-account (vigil-lock) ------------------------------------------
# The journal's login_refused records (vigild's, or the module's own when vigild did
# not answer) for USER and SERVICE.
refusal_recorded() { # USER SERVICE
    ct journalctl -t vigild -t pam_vigil -o cat --no-pager | grep 'event=login_refused ' |
        grep -E "(^| )user=$1( |\$)" | grep -Eq "(^| )service=$2( |\$)"
}
# su - USER run by root (PAM_USER is USER through common-account), its output kept.
su_as_root() { # USER OUTFILE
    ct timeout 30 su - "$1" -c 'echo SU-IN' >"$2" 2>&1
}
# An ssh password login that prints sshd's banner (the account stage's message).
ssh_with_banner() { # USER OUTFILE
    timeout 30 nsenter -t "$leader" -n sshpass -p "$pw" ssh -p 22 -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o PubkeyAuthentication=no -o LogLevel=INFO "$1@127.0.0.1" 'echo SSH-IN' >"$2" 2>&1
}
says_locked() { grep -q "vigil: account $1 is locked by root until an admin lifts it: $2" "$3"; }
logged_in() { grep -qx "$1" "$2"; }

# ctcron: a cron job every minute and a lock from early in the run; lock_cron_check,
# near the end, looks at what cron did with it (a minute has passed by then). Its user
# manager cannot start while locked. ctssh's job beside it shows that cron runs jobs.
lock_cron_start() {
    check "cron is installed and running (tests/run.sh installs it on the machine)" ct systemctl is-active -q cron
    ct sh -c "useradd -m -u 59704 -s /bin/bash ctcron"
    echo '* * * * * echo ran >"$HOME/cron-ran"' | ct crontab -u ctcron -
    echo '* * * * * echo ran >"$HOME/cron-ran"' | ct crontab -u ctssh -
    cron_since=$(date +%s)
    check "vigilctl lock --user ctcron" ct vigilctl lock --user ctcron --why "ct-cron-$$"
    check "a locked user's systemd --user manager cannot start (systemd-user includes common-account)" \
        fails ct timeout 30 systemctl start user@59704.service
    check "... login_refused service=systemd-user" wait_for 25 refusal_recorded ctcron systemd-user
}

lock_cron_check() {
    # cron runs a minute's jobs at its start: the first minute after the crontab, + 10 s.
    ready=$(( (cron_since / 60 + 1) * 60 + 10 ))
    while [ "$(date +%s)" -lt "$ready" ] && [ "$(date +%s)" -lt $((cron_since + 80)) ]; do sleep 1; done
    check "cron ran an unlocked user's job (ctssh)" test -s "$root/home/ctssh/cron-ran"
    check "cron refused the locked user's job (common-account): it did not run" test ! -e "$root/home/ctcron/cron-ran"
    check "... login_refused service=cron" wait_for 25 refusal_recorded ctcron cron
    check "... and cron logged the refusal (CRON[pid]: Permission denied)" cron_logged_refusal
}
# cron's own line names no user: it is found by the pid in the login_refused record.
cron_logged_refusal() {
    cron_pid=$(ct journalctl -t vigild -t pam_vigil -o cat --no-pager | grep 'event=login_refused .*user=ctcron .*service=cron' |
        sed -n 's/.* pid=\([0-9]*\).*/\1/p' | head -1)
    [ -n "$cron_pid" ] && ct journalctl -t CRON -o cat --no-pager "SYSLOG_PID=$cron_pid" | grep -qx 'Permission denied'
}

lock_checks() {
    ct sh -c "useradd -m -u 59703 -s /bin/bash ctlock && printf 'ctlock:$pw\n' | chpasswd"
    out=$VIGIL_CT_DIR/lock.out
    check "vigilctl lock --user ctlock" ct vigilctl lock --user ctlock --why "ct-lock-$$"
    check "su - ctlock run by root is refused" fails su_as_root ctlock "$out.su"
    check "... and says who locked, until when and why" says_locked ctlock "ct-lock-$$" "$out.su"
    check "an ssh password login of ctlock is refused" fails ssh_with_banner ctlock "$out.ssh"
    check "... and ssh prints the message (sshd's banner)" says_locked ctlock "ct-lock-$$" "$out.ssh"
    check "login_refused service=sshd" wait_for 25 refusal_recorded ctlock sshd
    check "login_refused service=su-l" refusal_recorded ctlock su-l
    check "vigilctl unlock --user ctlock" ct vigilctl unlock --user ctlock
    check "su - ctlock works again" su_as_root ctlock "$out.su2"
    check "... and runs the command" logged_in SU-IN "$out.su2"
    check "an ssh login of ctlock works again" ssh_with_banner ctlock "$out.ssh2"
    check "... and logs in" logged_in SSH-IN "$out.ssh2"
}
