#!/bin/sh
# Powers the container of up.sh off and removes its overlay (bounded: 5 s, then SIGKILL).
dir=${VIGIL_CT_DIR:-/var/tmp/vigil-container}
machine=${VIGIL_CT_NAME:-vigil-ct}
cgroup=vigil-ct-$machine
[ -d "$dir" ] || exit 0
if [ -f "$dir/leader.pid" ]; then
    nsenter -t "$(cat "$dir/leader.pid")" -a systemctl poweroff >/dev/null 2>&1 || true
fi
if [ -f "$dir/nspawn.pid" ]; then
    ns=$(cat "$dir/nspawn.pid")
    i=0
    while kill -0 "$ns" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$ns" 2>/dev/null && kill -KILL "$ns" 2>/dev/null
    i=0
    while kill -0 "$ns" 2>/dev/null && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
fi
umount "$dir/root" 2>/dev/null || umount -l "$dir/root" 2>/dev/null
umount "$dir/up" 2>/dev/null || umount -l "$dir/up" 2>/dev/null
# systemd in the container made cgroups below ours: empty now, removed deepest first
# (a cgroup directory goes only with rmdir, and only once its children are gone).
for h in unified systemd; do
    [ -d "/sys/fs/cgroup/$h/$cgroup" ] || continue
    find "/sys/fs/cgroup/$h/$cgroup" -depth -type d -exec rmdir {} \; 2>/dev/null
done
rm -rf "$dir"
exit 0
