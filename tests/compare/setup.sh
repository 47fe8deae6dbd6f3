# Setup of tests/compare/alternatives.sh (sourced, bash): users, sshd instances, vigil,
# sudo, TMOUT, all inside the container's overlay (never the machine's /etc).

# The users of every scenario (cmp-NAME, shell bash, one random password).
USERS="l1 l2 l3 lo v1 v2 v3 vo vp t1 t2 t3 t4 t5 h1 h2 a1 a2 s1 s2 c1"

make_users() {
    local u
    for u in $USERS; do ct useradd -m -s /bin/bash "cmp-$u"; done
    for u in $USERS; do echo "cmp-$u:$PASSWORD"; done | ct chpasswd
}

# PAM stacks of the sshd instances: Debian's /etc/pam.d/sshd without common-session's
# pam_systemd ("base"), then with pam_systemd or pam_vigil added, nothing else.
pam_base() {
    cat <<'EOF'
@include common-auth
account  required pam_nologin.so
@include common-account
session  required pam_loginuid.so
session  optional pam_keyinit.so force revoke
session  required pam_unix.so
session  required pam_limits.so
session  required pam_env.so
EOF
}

# sshd_instance NAME PORT STACK [CONFIG LINES...]: /usr/sbin/sshd-cmp-NAME (its PAM
# service is its program name) as a transient unit of the container's systemd.
sshd_instance() {
    local name=$1 port=$2 stack=$3 i=0
    shift 3
    ln -sf /usr/sbin/sshd "$root/usr/sbin/sshd-cmp-$name"
    { pam_base; [ -z "$stack" ] || echo "session  optional $stack"; } >"$root/etc/pam.d/sshd-cmp-$name"
    {
        printf '%s\n' "$@"
        cat <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey /etc/ssh/cmp_host_key
UsePAM yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication no
PermitRootLogin no
AllowUsers cmp-*
PrintMotd no
PrintLastLog no
MaxStartups 100
PidFile /run/sshd-cmp-$name.pid
EOF
    } >"$root/etc/ssh/cmp-$name.conf"
    ct systemd-run -q --unit="cmp-sshd-$name" --collect "/usr/sbin/sshd-cmp-$name" -D -e -f "/etc/ssh/cmp-$name.conf"
    while ! ctnet ss -Hltn "sport = :$port" | grep -q LISTEN; do
        i=$((i + 1)); [ $i -lt 100 ] || die "sshd-cmp-$name does not listen on $port"
        sleep 0.1
    done
}

# vigil as packaging/install.sh lays it out, started by the container's systemd.
install_vigil() {
    local pamdir i=0
    pamdir=$(dirname "$(find "$root/lib" "$root/usr/lib" -name pam_unix.so -path '*security*' | head -1)")
    install -D -m 0755 "$BIN/vigild" "$root/usr/sbin/vigild"
    install -D -m 0755 "$BIN/vigilctl" "$root/usr/bin/vigilctl"
    install -D -m 0644 "$BIN/libpam_vigil.so" "$pamdir/pam_vigil.so"
    install -D -m 0644 "$repo/packaging/dbus/org.vigil1.conf" "$root/usr/share/dbus-1/system.d/org.vigil1.conf"
    install -D -m 0644 "$repo/packaging/systemd/vigild.service" "$root/lib/systemd/system/vigild.service"
    install -D -m 0644 "$repo/packaging/pam/vigil-reauth" "$root/etc/pam.d/vigil-reauth"
    mkdir -p "$root/etc/vigil"
    # Idle supervision only for the vigil scenarios' users; re-auth for every session.
    cat >"$root/etc/vigil/vigil.toml" <<EOF
[defaults]
idle_timeout = "0"
reauth_window = "${REAUTH_WINDOW}s"
reauth_after_idle = "${REAUTH_IDLE}s"

[[policy]]
name = "compare-idle"
match = { users = ["cmp-v1", "cmp-v2", "cmp-v3", "cmp-vo"] }
idle_timeout = "${T}s"
idle_warning = "${WARN}s"
kill_grace = "2s"

[[policy]]
name = "compare-output-counts"
match = { users = ["cmp-vp"] }
idle_timeout = "${T}s"
idle_warning = "${WARN}s"
output_is_activity = true
EOF
    ct vigilctl check-config /etc/vigil/vigil.toml >&2
    ct busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig
    ct systemctl daemon-reload
    ct systemctl start vigild
    while ! ct vigilctl daemon >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 100 ] || die "vigild did not start: $(ct systemctl status vigild | tail -5)"
        sleep 0.1
    done
}

# sudo: cmp-s1 keeps sudo's own timestamp (timestamp_timeout = REAUTH_WINDOW) through
# an untouched copy of /etc/pam.d/sudo; cmp-s2 has vigil decide (the container's
# /etc/pam.d/sudo with vigil-reauth first, sudo's cache off).
setup_sudo() {
    local min
    min=$(awk -v s="$REAUTH_WINDOW" 'BEGIN { printf "%.4f", s / 60 }')
    cp "$root/etc/pam.d/sudo" "$root/etc/pam.d/sudo-cmp-plain"
    sed -i '0,/^@include common-auth/s//@include vigil-reauth\n@include common-auth/' "$root/etc/pam.d/sudo"
    grep -q '^@include vigil-reauth' "$root/etc/pam.d/sudo" || die "could not add vigil-reauth to the container's sudo"
    cat >"$root/etc/sudoers.d/cmp" <<EOF
Defaults:cmp-s1 timestamp_timeout=$min, pam_service=sudo-cmp-plain, !lecture
Defaults:cmp-s2 timestamp_timeout=0, !lecture
cmp-s1 ALL=(ALL) ALL
cmp-s2 ALL=(ALL) ALL
EOF
    chmod 0440 "$root/etc/sudoers.d/cmp"
    ct visudo -c >/dev/null || die "sudoers in the container"
}

# TMOUT as an admin sets it to be kept: readonly, from /etc/profile.d.
setup_tmout() {
    cat >"$root/etc/profile.d/cmp-tmout.sh" <<EOF
case \$USER in cmp-t*) TMOUT=$T; readonly TMOUT; export TMOUT ;; esac
EOF
}

# logind's StopIdleSessionSec on (N seconds) or off ("").
logind_idle() {
    mkdir -p "$root/etc/systemd/logind.conf.d"
    if [ -n "$1" ]; then
        printf '[Login]\nStopIdleSessionSec=%s\n' "$1" >"$root/etc/systemd/logind.conf.d/cmp.conf"
    else
        rm -f "$root/etc/systemd/logind.conf.d/cmp.conf"
    fi
    ct systemctl restart systemd-logind
}
