#!/bin/bash
# vigil next to the alternatives, measured on this machine (docs/comparison.md: the
# tables there). Not a test: it prints what each mechanism did, and a table.
#
#   bash tests/compare/alternatives.sh        (as root, from the repository; ~5 minutes)
#
# Everything runs in a container with a real systemd (tests/container/up.sh): logind,
# sshd instances on the container's own 127.0.0.1, sudo, vigild; users, PAM files,
# sudoers and logind.conf.d are written to the container's overlay, never to the
# machine's /etc. The ssh clients run on the machine in tmux, inside the container's
# network namespace. The container is always powered off and removed (trap).
#
# Environment: VIGIL_BIN_DIR (vigild, vigilctl, libpam_vigil.so; default
# $CARGO_TARGET_DIR/release or target/release), COMPARE_TIMEOUT (idle timeout of every
# mechanism, s, default 20), COMPARE_PAIRS (login rounds, default 30), COMPARE_OUT
# (where raw results go, default a new /tmp/vigil-compare.XXXX), COMPARE_PHASES (default
# "logind others sudo cost": a subset re-measures part of the table).
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
# The container's up/down scripts (another copy of them: VIGIL_CT_TOOLS=DIR).
CT_TOOLS=${VIGIL_CT_TOOLS:-$repo/tests/container}
BIN=${VIGIL_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/release}
T=${COMPARE_TIMEOUT:-20}
WARN=$((T * 2 / 5))
REAUTH_WINDOW=15
REAUTH_IDLE=6
PAIRS=${COMPARE_PAIRS:-30}
PHASES=" ${COMPARE_PHASES:-logind others sudo cost} "
export VIGIL_CT_DIR=/var/tmp/vigil-compare VIGIL_CT_NAME=vigil-compare
root=$VIGIL_CT_DIR/root
OUT=${COMPARE_OUT:-$(mktemp -d /tmp/vigil-compare.XXXX)}
TMUX_SOCK=$OUT/tmux.sock
PASSWORD=$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')

. "$repo/tests/compare/lib.sh"
. "$repo/tests/compare/setup.sh"
. "$repo/tests/compare/scenario.sh"
. "$repo/tests/compare/sudo_cost.sh"

[ "$(id -u)" = 0 ] || die "run as root"
for f in "$CT_TOOLS/up.sh" "$CT_TOOLS/down.sh" "$BIN/vigild" "$BIN/vigilctl" "$BIN/libpam_vigil.so"; do
    [ -e "$f" ] || die "missing $f (VIGIL_CT_TOOLS, VIGIL_BIN_DIR)"
done
# As install.sh: a module built together with the daemon carries tokio into sshd.
! grep -q tokio "$BIN/libpam_vigil.so" || die "$BIN/libpam_vigil.so carries tokio (build it alone: cargo build --release -p pam_vigil)"
for c in tmux sshpass ssh nsenter; do command -v $c >/dev/null || die "needs $c"; done

cleanup() {
    local tp
    tp=$(tm display-message -p '#{pid}' 2>/dev/null) && kill "$tp" 2>/dev/null
    sh "$CT_TOOLS/down.sh"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

log "container up ($VIGIL_CT_DIR); raw results in $OUT"
LEADER=$(sh "$CT_TOOLS/up.sh")
# Everything below writes under $root: it must be the container's overlay.
mountpoint -q "$root" || die "$root is not mounted"
ssh-keygen -q -t ed25519 -N '' -f "$root/etc/ssh/cmp_host_key"
make_users
install_vigil
setup_sudo
setup_tmout
sshd_instance base 2200 ""
sshd_instance systemd 2201 pam_systemd.so
sshd_instance vigil 2202 pam_vigil.so
sshd_instance chan 2203 "" "ChannelTimeout session:*=${T}s"
sshd_instance alive 2204 "" "ClientAliveInterval 2" "ClientAliveCountMax 3"
tm new-session -d -s cmp -x 160 -y 40
tm set -g remain-on-exit on

{
    echo "date: $(date -Is)"
    echo "machine: $(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "systemd: $(ct systemctl --version | head -1)"
    echo "OpenSSH: $(ct sshd -V 2>&1 | head -1)"
    echo "bash: $(bash --version | head -1)"
    echo "sudo: $(ct sudo -V | head -1)"
    echo "vigild: $(ct vigilctl daemon 2>/dev/null | head -1)"
    echo "idle timeout of every mechanism: ${T}s (vigil idle_warning ${WARN}s)"
    echo "load average at the start: $(cut -d" " -f1-3 /proc/loadavg)"
} | tee "$OUT/facts.txt"

phase() { case $PHASES in *" $1 "*) return 0 ;; esac; return 1; }

if phase logind; then
log "1. logind StopIdleSessionSec=$T (sshd with pam_systemd)"
logind_idle "$T"
echo "== logind StopIdleSessionSec=$T" | tee -a "$OUT/sessions.tsv"
run_scenario logind "ld-1 cmp-l1 2201 idle 0" "ld-2 cmp-l2 2201 idle 2.7" \
    "ld-3 cmp-l3 2201 idle 5.4" "ld-out cmp-lo 2201 output 0"
ct journalctl -q -o cat -u systemd-logind --since "-3min" | grep -i idle >"$OUT/logind.log" || true
fi

if phase others; then
logind_idle ""
log "2. vigil, TMOUT, ChannelTimeout, ClientAlive (logind's idle stop off)"
echo "== vigil idle_timeout=$T, TMOUT=$T (readonly), ChannelTimeout session:*=$T, ClientAlive 2x3" |
    tee -a "$OUT/sessions.tsv"
run_scenario others \
    "vg-1 cmp-v1 2202 idle 0" "vg-2 cmp-v2 2202 idle 2.7" "vg-3 cmp-v3 2202 idle 5.4" \
    "vg-out cmp-vo 2202 output 0" "vg-out-counts cmp-vp 2202 output 0" \
    "tm-idle cmp-t1 2201 idle 1.3" "tm-partial cmp-t4 2201 partial 1.3" "tm-cat cmp-t2 2201 cat 0" \
    "tm-out cmp-t3 2201 output 0" "tm-escape cmp-t5 2201 escape 0" \
    "ch-idle cmp-h1 2203 idle 1.3" "ch-out cmp-h2 2203 output 0" \
    "ca-idle cmp-a1 2204 idle 1.3" "ca-dead cmp-a2 2204 stopped 1.3"
ct journalctl -q -o cat -t vigild --since "-3min" | grep -E 'idle_warning|session_end' >"$OUT/vigil.log" || true
ct journalctl -q -o cat -u cmp-sshd-chan -u cmp-sshd-alive --since "-3min" |
    grep -Ei 'timeout|inactiv|not responding' >"$OUT/sshd.log" || true
fi

if phase sudo; then
log "3. sudo's timestamp (timestamp_timeout=${REAUTH_WINDOW}s) vs vigil (reauth_window=${REAUTH_WINDOW}s, reauth_after_idle=${REAUTH_IDLE}s)"
run_sudo
ct journalctl -q -o cat -t vigild --since "-2min" | grep -E 'reauth_' >"$OUT/reauth.log" || true
fi

if phase cost; then
log "4. cost per ssh login: $PAIRS rounds of base / +pam_systemd / +pam_vigil"
run_cost
fi

. "$repo/tests/compare/table.sh"
print_table | tee "$OUT/table.md"
