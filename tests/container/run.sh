#!/bin/sh
# The vigil package under a real systemd: boots a container that stands for a fresh
# server (up.sh), runs the README's install command in it from a clean clone of this
# repository, checks the package, and always powers the container off (trap).
#   sh tests/container/run.sh            # git clone + sh packaging/install.sh inside
#   sh tests/container/run.sh DEB        # quicker, while working on the checks: apt-get install DEB
# Run as root; tests/run.sh runs it after the other tests. Every wait is bounded.
# Prints one line per check (ok/FAIL) and exits 1 if any failed.
set -eu

deb=
[ $# = 0 ] || deb=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "container/run.sh: needs root" >&2; exit 1; }
export VIGIL_CT_DIR=${VIGIL_CT_DIR:-/var/tmp/vigil-container}
tmux_sock=vigil-ct-$$
failures=0
started=$(date +%s)

cleanup() {
    # VIGIL_CT_KEEP=1: leave the container up to look into a failure (down.sh ends it).
    [ "${VIGIL_CT_KEEP:-}" = 1 ] && return 0
    tmux -L "$tmux_sock" kill-server 2>/dev/null || true
    rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$tmux_sock"
    [ -n "${held_pid:-}" ] && kill "$held_pid" 2>/dev/null || true
    sh "$here/down.sh"
}
trap cleanup EXIT INT TERM

ok() { echo "container: ok   $*"; }
fail() { echo "container: FAIL $*"; failures=$((failures + 1)); }
check() { # DESCRIPTION COMMAND...
    what=$1; shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
# Retries COMMAND every 0.2 s, TRIES times at most.
wait_for() { # TRIES COMMAND...
    tries=$1; shift
    while ! "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || return 1
        sleep 0.2
    done
}

leader=$(sh "$here/up.sh")
root=$VIGIL_CT_DIR/root
ct() { nsenter -t "$leader" -a "$@"; }
ssh_as() { # USER PASSWORD COMMAND: a real password login through the stock /etc/pam.d/sshd
    timeout 30 nsenter -t "$leader" -n sshpass -p "$2" ssh -p 22 -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o PubkeyAuthentication=no -o LogLevel=ERROR "$1@127.0.0.1" "$3"
}
vigild_log() { ct journalctl -t vigild -o cat --no-pager; }
session_of_user() { ct vigilctl list | awk -v u="$1" '$2 == u { print $1; exit }'; }
policy_of() { ct vigilctl show "$1" | awk '$1 == "policy:" { print $2 }'; }
write_config() { # the policy for the tests' two users, then TOML lines for ctcons
    { echo '[[policy]]'; echo 'name = "ct-ssh"'; echo 'match = { users = ["ctssh"] }'; echo "$1"
      echo '[[policy]]'; echo 'name = "ct-console"'; echo 'match = { users = ["ctcons"] }'; echo "$2"; } >"$root/etc/vigil/vigil.toml"
}

# ---- install ------------------------------------------------------------------------
pw=ct-Pw-$$
# Uids far from those the machine's own tests give their users: without a user
# namespace a uid is the same on both sides, and a test on the machine that ends its
# user's processes would end these too.
ct sh -c "useradd -m -u 59701 -s /bin/bash ctssh && useradd -m -u 59702 -s /bin/bash -G sudo ctcons && printf 'ctssh:$pw\nctcons:$pw\n' | chpasswd"
# man-db's trigger rebuilds its index for minutes' worth of pages: not under test.
ct sh -c 'echo "man-db man-db/auto-update boolean false" | debconf-set-selections'
check "a fresh server: no vigil package, no policy-rc.d, no vigild, no vigil state or PAM line" sh -c "\
    ! nsenter -t $leader -a dpkg -s vigil >/dev/null 2>&1 && [ ! -e $root/usr/sbin/policy-rc.d ] && \
    ! nsenter -t $leader -a pgrep -x vigild >/dev/null && \
    ! nsenter -t $leader -a ls -d /etc/vigil /var/lib/vigil /run/vigil /var/log/vigild.log /usr/sbin/vigild 2>/dev/null | grep -q . && \
    ! grep -rqs --exclude='vigil-test-*' --exclude='.vigil-test-*' -e pam_vigil -e vigil-reauth $root/etc/pam.d"
mkdir -p "$root/var/cache/vigil-test"
apt_get() { ct env DEBIAN_FRONTEND=noninteractive apt-get -y -q "$@" >>"$VIGIL_CT_DIR/apt.log" 2>&1 || { tail -20 "$VIGIL_CT_DIR/apt.log"; return 1; }; }
if [ -n "$deb" ]; then
    cp "$deb" "$root/var/cache/vigil-test/"
    check "apt-get install ./$(basename "$deb")" apt_get install "/var/cache/vigil-test/$(basename "$deb")"
else
    # The README's install command, as a newcomer runs it on a server: a clean clone,
    # sh packaging/install.sh (apt starts vigild under systemd). Its cargo builds in
    # the outer build's target directory as the overlay shows it: the compiled
    # dependencies are reused, and what it writes stays in the overlay. The container
    # has no network: cargo works offline from the machine's registry cache.
    target=$(realpath -m "${CARGO_TARGET_DIR:-$repo/target}")
    # The outer run's own package, seen through the overlay, must not pass for this one.
    rm -rf "$root$target/debian" "$root/root/vigil-clone"
    install_from_clone() {
        nsenter -t "$leader" -a git -c safe.directory="$repo" clone -q --no-hardlinks "$repo" /root/vigil-clone &&
            nsenter -t "$leader" -a env CARGO_TARGET_DIR="$target" CARGO_NET_OFFLINE=true \
                sh -c 'cd /root/vigil-clone && exec sh packaging/install.sh'
    }
    install_started=$(date +%s)
    if install_from_clone >"$VIGIL_CT_DIR/install.log" 2>&1; then
        ok "git clone (clean) and sh packaging/install.sh, under systemd ($(( $(date +%s) - install_started )) s)"
    else
        fail "git clone (clean) and sh packaging/install.sh ($VIGIL_CT_DIR/install.log):"
        tail -30 "$VIGIL_CT_DIR/install.log"
    fi
    built=$(ls "$root$target"/debian/vigil_*.deb 2>/dev/null | head -1) || true
    [ -n "$built" ] || { fail "install.sh built no package in $target/debian"; exit 1; }
    cp "$built" "$root/var/cache/vigil-test/"
    deb=$built
fi
check "vigild is active and enabled" sh -c "[ \"\$(nsenter -t $leader -a systemctl is-active vigild)\" = active ] && nsenter -t $leader -a systemctl is-enabled -q vigild"
check "vigild owns org.vigil1 on the system bus" wait_for 25 ct busctl --system status org.vigil1
check "pam_vigil.so in the multiarch PAM directory" test -f "$root/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/security/pam_vigil.so"
check "man pages and completions" test -f "$root/usr/share/man/man8/pam_vigil.8.gz" -a -f "$root/usr/share/man/man1/vigilctl.1.gz" \
    -a -f "$root/usr/share/man/man5/vigil.toml.5.gz" -a -f "$root/usr/share/bash-completion/completions/vigilctl"

# ---- ssh through the stock /etc/pam.d/sshd, beside logind ------------------------------
ct pam-auth-update --enable vigil vigil-lock
# The profiles in common-auth, common-account and common-session; wrong and right
# passwords through the stock sudo and sshd stacks (pam_stacks.sh).
. "$here/pam_stacks.sh"
pam_stack_checks
write_config 'idle_timeout = "10m"' 'idle_timeout = "0"'
ct systemctl reload vigild
held=$VIGIL_CT_DIR/held.out
# Held open until killed (timeout passes the SIGTERM on to ssh), 5 minutes at most.
timeout 300 nsenter -t "$leader" -n sshpass -p "$pw" ssh -p 22 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o PubkeyAuthentication=no -o LogLevel=ERROR ctssh@127.0.0.1 \
    'echo "$VIGIL_SESSION_ID $(cat /proc/self/sessionid) $XDG_SESSION_ID"; exec sleep 600' >"$held" 2>&1 &
held_pid=$!
wait_for 100 test -s "$held" || true
read -r vid ses xdg <"$held" || true
check "ssh login registered by vigil (VIGIL_SESSION_ID=${vid:-none})" test -n "${vid:-}" -a "${vid:-}" = "$(session_of_user ctssh)"
check "logind's session is the audit session ($xdg = $ses)" test -n "${xdg:-}" -a "${xdg:-}" = "${ses:-}"
check "vigild names the audit session logind tracks" sh -c "nsenter -t $leader -a vigilctl show $vid | grep -q 'audit session: *$ses\$' && nsenter -t $leader -a loginctl show-session $xdg -p Id --value | grep -qx $xdg"
uid=$(ct id -u ctssh)
check "a systemd --user manager runs for the login" wait_for 50 sh -c "[ \"\$(nsenter -t $leader -a systemctl is-active user@$uid.service)\" = active ]"
check "no systemd-user session at vigild" sh -c "! nsenter -t $leader -a vigilctl list | awk '{print \$4}' | grep -qx systemd-user && ! nsenter -t $leader -a journalctl -t vigild -o cat | grep -q 'service=systemd-user'"

# ---- locks (pam_stacks.sh): ctlock refused by su and sshd then let in again; ctcron's
# lock held across the restarts below, its cron job looked at near the end ----------------
lock_checks
lock_cron_start

# ---- reload, restart, SIGKILL ---------------------------------------------------------
check "session policy before reload is ct-ssh" test "$(policy_of "$vid")" = ct-ssh
write_config 'idle_timeout = "9m"' 'idle_timeout = "0"'
sed -i 's/name = "ct-ssh"/name = "ct-ssh-reloaded"/' "$root/etc/vigil/vigil.toml"
ct systemctl reload vigild
check "systemctl reload vigild applies the new policy" wait_for 25 sh -c "nsenter -t $leader -a vigilctl show $vid | grep -q 'policy: *ct-ssh-reloaded'"
ct systemctl restart vigild
check "systemctl restart vigild keeps the session" wait_for 25 sh -c "nsenter -t $leader -a vigilctl show $vid >/dev/null"
before=$(ct systemctl show -p MainPID --value vigild)
ct systemctl kill -s KILL vigild
check "after SIGKILL, Restart= brings vigild back" wait_for 50 sh -c \
    "p=\$(nsenter -t $leader -a systemctl show -p MainPID --value vigild); [ \"\$p\" != 0 ] && [ \"\$p\" != $before ] && nsenter -t $leader -a vigilctl daemon"
check "... and it kept the session" sh -c "nsenter -t $leader -a vigilctl show $vid >/dev/null"
check "the session was restored, never opened again" sh -c \
    "[ \$(nsenter -t $leader -a journalctl -t vigild -o cat | grep -c 'event=session_restored session=$vid ') -ge 2 ] && [ \$(nsenter -t $leader -a journalctl -t vigild -o cat | grep -c 'event=session_open session=$vid ') = 1 ]"
before=$(ct systemctl show -p MainPID --value vigild)
check "a new package (apt-get install --reinstall) restarts vigild" sh -c "\
    nsenter -t $leader -a env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall /var/cache/vigil-test/$(basename "$deb") >>$VIGIL_CT_DIR/apt.log 2>&1 && \
    p=\$(nsenter -t $leader -a systemctl show -p MainPID --value vigild) && [ \"\$p\" != 0 ] && [ \"\$p\" != $before ]"
check "... and keeps the session" wait_for 25 sh -c "nsenter -t $leader -a vigilctl show $vid >/dev/null"
kill "$held_pid" 2>/dev/null || true
held_pid=

# ---- admin verbs delegated through the container's polkitd (polkit.sh) --------------------
. "$here/polkit.sh"
polkit_checks

# ---- console login on a pty of the container: pkexec, then idleness -------------------------
pane() { tmux -L "$tmux_sock" capture-pane -p -J -S -300 -t cons; }
pane_has() { pane | grep -q -- "$1"; }
keys() { tmux -L "$tmux_sock" send-keys -t cons "$@"; }
# The text after the last line holding MARK.
after() { pane | awk -v m="$1" 'index($0, m) { out = "" } { out = out $0 "\n" } END { printf "%s", out }'; }
printf '@include vigil-reauth\n' >"$root/etc/pam.d/polkit-1"
cat /usr/lib/pam.d/polkit-1 >>"$root/etc/pam.d/polkit-1"
write_config 'idle_timeout = "10m"' 'idle_timeout = "14s"
idle_warning = "6s"
kill_grace = "1s"
reauth_window = "5m"
reauth_after_idle = "4s"'
ct systemctl reload vigild
tmux -L "$tmux_sock" new-session -d -s cons -x 150 -y 50 "nsenter -t $leader -a script -qfc /bin/login /dev/null"
# The terminal stays readable after vigild ended the login.
tmux -L "$tmux_sock" set-option -t cons remain-on-exit on
wait_for 50 pane_has 'login:' && keys ctcons Enter
wait_for 50 pane_has 'Password:' && keys "$pw" Enter
check "console login on a pty of the container" wait_for 50 sh -c "nsenter -t $leader -a vigilctl list | awk '\$2 == \"ctcons\" && \$4 == \"login\"' | grep -q ."
cid=$(session_of_user ctcons)
echo "container: console session $cid"
pkexec_round() { # N: runs pkexec, answers the password when asked; prints asked/not-asked
    # polkit 122 (Debian 12): pkexec's own text agent is registered under root's uid
    # and the helper's answer fails ("No session for cookie"; fixed in polkit 124,
    # polkit-org/polkit#423). pkttyagent, run by the user for the same process, is the
    # agent instead: its polkit-agent-helper-1 runs PAM (service polkit-1) in the session.
    keys "echo MARK$1; sh -c 'pkttyagent --process \$\$ --fallback & a=\$!; sleep 1; pkexec /bin/true; r=\$?; kill \$a; exit \$r'; echo PK$1=\$?" Enter
    wait_for 50 sh -c "tmux -L $tmux_sock capture-pane -p -J -S -300 -t cons | awk -v m=MARK$1 'index(\$0, m) { s = 1 } s' | grep -q -e 'Password:' -e 'PK$1=[0-9]'" || true
    if after "MARK$1" | grep -q 'Password:'; then
        # pkttyagent turns echo off after its prompt, flushing what was typed before.
        sleep 0.5
        keys "$pw" Enter
        wait_for 50 sh -c "tmux -L $tmux_sock capture-pane -p -J -S -300 -t cons | grep -q 'PK$1=0'" && echo asked || echo failed
    else
        after "MARK$1" | grep -q "PK$1=0" && echo not-asked || echo failed
    fi
}
r1=$(pkexec_round 1)
r2=$(pkexec_round 2)
sleep 6
r3=$(pkexec_round 3)
check "pkexec: asked first ($r1)" test "$r1" = asked
check "pkexec: trusted within the window ($r2)" test "$r2" = not-asked
check "pkexec: asked again after 6 s idle (reauth_after_idle 4s) ($r3)" test "$r3" = asked
polkit_prompt_check
check "pkexec's answers are vigild's (polkit-1: required, recorded, granted, required for idleness)" sh -c \
    "nsenter -t $leader -a journalctl -t vigild -o cat | grep 'reauth_service=polkit-1' | grep -o '^event=[a-z_]*\\|reason=[a-z_]*' | paste -sd' ' | \
     grep -q 'event=reauth_required reason=none event=reauth_recorded event=reauth_granted event=reauth_required reason=idle event=reauth_recorded'"
keys 'nohup sleep 1000 >/dev/null 2>&1 & echo NOHUP=$!' Enter
wait_for 25 pane_has 'NOHUP=[0-9]' || true
check "console session warned on its terminal" wait_for 100 pane_has '\*\*\* vigil: no input'
check "console session ended for idleness" wait_for 100 sh -c "nsenter -t $leader -a journalctl -t vigild -o cat | grep -q 'event=session_end session=$cid .*reason=idle'"
check "its nohup'd job was killed" wait_for 50 sh -c "! nsenter -t $leader -a pgrep -u ctcons -x sleep"
check "logind ended the session too" wait_for 50 sh -c "! nsenter -t $leader -a loginctl list-sessions --no-legend | awk '{print \$3}' | grep -qx ctcons"
check "vigild's TerminateSession call to logind did not fail" sh -c "! nsenter -t $leader -a journalctl -t vigild -o cat | grep -q logind_terminate_failed"
check "idle records name logind's session" sh -c "nsenter -t $leader -a journalctl -t vigild -o cat | grep 'event=session_end session=$cid ' | grep -q 'logind_session='"

lock_cron_check

if [ "$failures" != 0 ]; then
    echo "container: the console's terminal:"; pane | grep -v '^$' | tail -40
    echo "container: vigild's records:"; vigild_log | grep -v session_restored | tail -15 | cut -c1-300
    ct vigilctl show "$cid" || true
fi

# What the records written here showed, for the documented-promises gate (tests/run.sh
# runs it after this stage): logind_session, for one, only a real logind gives.
conformance=${CARGO_TARGET_DIR:-$repo/target}/release/conformance
if [ -n "${VIGIL_CONFORMANCE_DIR:-}" ] && [ -x "$conformance" ]; then
    mkdir -p "$VIGIL_CONFORMANCE_DIR"
    vigild_log >"$VIGIL_CONFORMANCE_DIR/container.records" || true
    "$conformance" records "$VIGIL_CONFORMANCE_DIR/container.records" container::run_sh || true
fi

# ---- purge ------------------------------------------------------------------------------
rm -f "$root/etc/pam.d/polkit-1"
check "apt-get purge vigil" apt_get purge vigil
# (/etc/pam.d/vigil-test-* are the machine's own e2e tests' files, seen through the overlay.)
check "no PAM line names vigil" sh -c "! grep -rqs --exclude='vigil-test-*' -e pam_vigil -e vigil-reauth $root/etc/pam.d"
check "no binary, module, unit or policy left" sh -c "! ls $root/usr/sbin/vigild $root/usr/bin/vigilctl $root/lib/*/security/pam_vigil.so \
    $root/lib/systemd/system/vigild.service $root/usr/share/dbus-1/system.d/org.vigil1.conf $root/usr/share/pam-configs/vigil $root/usr/share/pam-configs/vigil-lock 2>/dev/null | grep -q ."
check "no state left (/etc/vigil, /var/lib/vigil, /run/vigil)" sh -c "! ct_state=\$(nsenter -t $leader -a ls -d /etc/vigil /var/lib/vigil /run/vigil 2>/dev/null) || [ -z \"\$ct_state\" ]"
check "vigild is gone" sh -c "! nsenter -t $leader -a pgrep -x vigild"
check "a login still works after the purge" sh -c "ssh_out=\$(timeout 30 nsenter -t $leader -n sshpass -p '$pw' ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o PubkeyAuthentication=no -o LogLevel=ERROR ctssh@127.0.0.1 'echo LOGGED-IN') && [ \"\$ssh_out\" = LOGGED-IN ]"

# ---- without systemd as PID 1 ------------------------------------------------------------
# The same overlay in a chroot of its own pid and mount namespaces (no /run/systemd/system,
# no system bus, no /dev/log): postinst starts vigild in the background, remove stops
# it. Everything in the namespace ends with it.
without_systemd() {
    unshare --pid --fork --mount sh -c "
        mount --make-rprivate /
        mount -t proc proc $root/proc && mount -t tmpfs tmpfs $root/run && mount -t tmpfs tmpfs $root/dev &&
        cp -a /dev/null /dev/zero /dev/random /dev/urandom $root/dev/ || exit 9
        exec chroot $root sh -c '
            export DEBIAN_FRONTEND=noninteractive
            apt-get install -y -q /var/cache/vigil-test/$(basename "$deb") >>/var/log/vigil-ct-nosystemd.log 2>&1 || exit 10
            pid=\$(cat /run/vigil/vigild.pid 2>/dev/null) || exit 11
            [ \"\$(cat /proc/\$pid/comm)\" = vigild ] || exit 12
            vigilctl daemon >/dev/null || exit 13
            apt-get remove -y -q vigil >>/var/log/vigil-ct-nosystemd.log 2>&1 || exit 14
            i=0; while [ -d /proc/\$pid ] && [ \$i -lt 50 ]; do sleep 0.1; i=\$((i + 1)); done
            [ ! -d /proc/\$pid ] || exit 15
            apt-get purge -y -q vigil >>/var/log/vigil-ct-nosystemd.log 2>&1 || exit 16
        '"
}
check "without systemd as PID 1: apt starts vigild in the background, remove stops it" without_systemd

echo "container: $failures failure(s) in $(( $(date +%s) - started )) s"
[ "$failures" = 0 ]
