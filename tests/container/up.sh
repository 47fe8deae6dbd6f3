#!/bin/sh
# Boots a real systemd (PID 1 of a systemd-nspawn container) on an overlay of this
# machine's own root, for the package tests (tests/container/run.sh). Nothing written
# inside touches the machine's own files: the overlay's upper layer is a tmpfs.
# Prints the container's PID 1 as seen from the machine. Needs systemd-container.
# Stop with tests/container/down.sh (always: run.sh calls it from a trap).
#
# Learned on Debian 12 (systemd 252): nspawn refuses --volatile=overlay for "/", so the
# overlay is mounted here; without a running host systemd it needs --register=no
# --keep-unit and a cgroup of its own.
set -eu

dir=${VIGIL_CT_DIR:-/var/tmp/vigil-container}
machine=${VIGIL_CT_NAME:-vigil-ct}
cgroup=vigil-ct-$machine
command -v systemd-nspawn >/dev/null || { echo "up.sh: needs systemd-container (apt-get install systemd-container)" >&2; exit 1; }
if [ -f "$dir/leader.pid" ] && kill -0 "$(cat "$dir/leader.pid")" 2>/dev/null; then
    echo "up.sh: a container is already up in $dir (tests/container/down.sh)" >&2
    exit 1
fi

# Bounded waits: 0.1 s steps.
wait_until() { # TRIES COMMAND...
    tries=$1; shift
    while ! "$@" 2>/dev/null; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || return 1
        sleep 0.1
    done
}

mkdir -p "$dir/up" "$dir/root"
mountpoint -q "$dir/up" || mount -t tmpfs -o size=4g,mode=755 vigil-ct-up "$dir/up"
mkdir -p "$dir/up/upper" "$dir/up/work"
mountpoint -q "$dir/root" || mount -t overlay vigil-ct-root -o "lowerdir=/,upperdir=$dir/up/upper,workdir=$dir/up/work" "$dir/root"
root=$dir/root
[ -s "$root/etc/machine-id" ] || systemd-id128 new >"$root/etc/machine-id"
# The container stands for a fresh server, whatever this machine carries. Everything
# below is removed in the overlay only (whiteouts in the tmpfs upper layer).
# Services of the machine that have no business in the container.
for unit in postgresql.service; do ln -sf /dev/null "$root/etc/systemd/system/$unit"; done
# A Docker-style policy-rc.d (exit 101) from the machine's base image: with it,
# deb-systemd-invoke never starts a unit. A server has none.
rm -f "$root/usr/sbin/policy-rc.d" "$root/usr/sbin/policy-rc.d.vigil-tests"
# The vigil package install.sh put on the machine: purged from the overlay's dpkg
# database, so that apt inside installs for real. Its scripts run in a chroot with
# pid and mount namespaces of their own and an empty /run: no "stop" of theirs can
# reach the machine's vigild, and no systemd is seen (nothing to stop or reload).
if dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${db:Status-Abbrev}' vigil 2>/dev/null | grep -q '^.[^n]'; then
    unshare --pid --fork --mount sh -c "
        mount --make-rprivate / &&
        mount -t proc proc $root/proc && mount -t tmpfs tmpfs $root/run && mount --rbind /dev $root/dev || exit 9
        exec chroot $root env DEBIAN_FRONTEND=noninteractive dpkg --purge vigil" >"$dir/purge.log" 2>&1 ||
        { echo "up.sh: dpkg --purge vigil in the overlay failed; $dir/purge.log:" >&2; tail -20 "$dir/purge.log" >&2; exit 1; }
fi
# What vigild of the machine left, and a vigil not installed as a package (files
# copied by hand): a fresh server has none of it.
rm -rf "$root/usr/sbin/vigild" "$root/usr/bin/vigilctl" "$root/etc/vigil" "$root/var/lib/vigil" "$root/run/vigil" \
    "$root/var/log/vigild.log" "$root/usr/libexec/vigil" \
    "$root/lib/systemd/system/vigild.service" "$root/usr/share/dbus-1/system.d/org.vigil1.conf" \
    "$root/usr/share/pam-configs/vigil" "$root/usr/share/pam-configs/vigil-lock" "$root/etc/pam.d/vigil-reauth" "$root"/lib/*/security/pam_vigil.so \
    "$root/etc/systemd/system/multi-user.target.wants/vigild.service"
# The machine's e2e tests may be running: /etc/pam.d/su patched by one of them is put
# back from its backup (their other files have names of their own and are harmless).
for backup in "$root"/etc/pam.d/.vigil-test-su-backup-*; do
    [ -f "$backup" ] || continue
    cp -p "$backup" "$root/etc/pam.d/su" && rm -f "$backup"
done

setsid -f sh -c "echo \$\$ >$dir/nspawn.pid
    for h in unified systemd; do
        [ -d /sys/fs/cgroup/\$h ] || continue
        mkdir -p /sys/fs/cgroup/\$h/$cgroup && echo \$\$ >/sys/fs/cgroup/\$h/$cgroup/cgroup.procs
    done
    exec systemd-nspawn -D $root -b -M $machine --register=no --keep-unit --private-network --console=read-only >$dir/console.log 2>&1"
wait_until 50 test -s "$dir/nspawn.pid" || { echo "up.sh: nspawn did not start" >&2; exit 1; }
ns=$(cat "$dir/nspawn.pid")
wait_until 100 pgrep -P "$ns" -x systemd >/dev/null || { echo "up.sh: no systemd in the container; $dir/console.log:" >&2; tail -20 "$dir/console.log" >&2; exit 1; }
leader=$(pgrep -P "$ns" -x systemd)
echo "$leader" >"$dir/leader.pid"
running() {
    st=$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null) || true
    [ "$st" = running ] || [ "$st" = degraded ]
}
wait_until 300 running || { echo "up.sh: systemd did not finish booting in 30 s" >&2; exit 1; }
echo "$leader"
