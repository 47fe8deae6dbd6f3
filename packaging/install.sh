#!/bin/sh
# Builds vigil, installs it in the usual places and starts vigild.
# Run as root from the repository:   sh packaging/install.sh
# It never edits /etc/pam.d: the README says how to turn vigil on in the PAM stack.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
command -v cargo >/dev/null || { echo "install.sh: cargo not found; install Rust with rustup (https://rustup.rs)" >&2; exit 1; }

# Build dependency: libpam's development files (the module links libpam).
if ! dpkg -s libpam0g-dev >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpam0g-dev
fi

# Two cargo invocations, never one: built together, cargo unifies zbus's features and
# the daemon's `tokio` reaches pam_vigil.so, which sshd and sudo load.
cargo build --release --locked -p vigil-daemon
cargo build --release --locked -p pam_vigil
target=${CARGO_TARGET_DIR:-target}
if grep -q tokio "$target/release/libpam_vigil.so"; then
    echo "install.sh: $target/release/libpam_vigil.so carries tokio; not installed (build it alone: cargo build --release -p pam_vigil)" >&2
    exit 1
fi

# The directory holding the system's PAM modules (multiarch on Debian).
pam_dir=$(dirname "$(find /lib /usr/lib -name pam_unix.so -path '*security*' 2>/dev/null | head -n 1)")
[ -d "$pam_dir" ] || { echo "install.sh: cannot find the PAM module directory" >&2; exit 1; }

install -D -m 0755 "$target/release/vigild" /usr/sbin/vigild
install -D -m 0755 "$target/release/vigilctl" /usr/bin/vigilctl
install -D -m 0644 "$target/release/libpam_vigil.so" "$pam_dir/pam_vigil.so"
install -D -m 0644 packaging/dbus/org.vigil1.conf /usr/share/dbus-1/system.d/org.vigil1.conf
install -D -m 0644 packaging/systemd/vigild.service /lib/systemd/system/vigild.service
install -D -m 0644 packaging/pam-configs/vigil /usr/share/pam-configs/vigil
install -D -m 0644 packaging/pam/vigil-reauth /etc/pam.d/vigil-reauth
install -D -m 0644 README.md /usr/share/doc/vigil/README.md
install -d -m 0755 /etc/vigil /run/vigil
install -d -m 0700 /var/lib/vigil
# Never overwrite the admin's configuration; ship the new default beside it.
if [ -e /etc/vigil/vigil.toml ]; then
    install -m 0644 packaging/vigil.toml /etc/vigil/vigil.toml.dist
else
    install -m 0644 packaging/vigil.toml /etc/vigil/vigil.toml
fi
/usr/bin/vigilctl check-config /etc/vigil/vigil.toml

# A running system bus must read the new policy before vigild asks for its name.
if [ -S /run/dbus/system_bus_socket ]; then
    dbus-send --system --type=method_call --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig 2>/dev/null || true
fi

if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    systemctl daemon-reload
    systemctl enable vigild.service
    systemctl restart vigild.service
    echo "vigild started by systemd: systemctl status vigild"
else
    # No systemd as PID 1 (a container): run vigild in the background.
    pidfile=/run/vigil/vigild.pid
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        kill "$(cat "$pidfile")"
        i=0; while kill -0 "$(cat "$pidfile")" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    fi
    nohup /usr/sbin/vigild >>/var/log/vigild.log 2>&1 &
    echo $! >"$pidfile"
    i=0; while [ ! -S /run/vigil/private ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    echo "vigild started in the background (pid $(cat "$pidfile"), log /var/log/vigild.log)"
    echo "stop it with:  kill \$(cat $pidfile)"
fi
/usr/bin/vigilctl daemon
echo "Turn vigil on for logins:  pam-auth-update --enable vigil   (see README.md)"
