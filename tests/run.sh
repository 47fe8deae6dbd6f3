#!/bin/sh
# Runs every vigil test: unit tests, then the end-to-end tests with real libpam,
# dbus-daemon, rsyslogd (and, as issues land, sshd and sudo).
# Run as root from the repository:   sh tests/run.sh
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

[ "$(id -u)" = 0 ] || { echo "tests/run.sh: the end-to-end tests need root" >&2; exit 1; }
command -v cargo >/dev/null || { echo "tests/run.sh: cargo not found; install Rust with rustup" >&2; exit 1; }

# The real parts the end-to-end tests start themselves (none of them is left running).
packages="rsyslog dbus openssh-server openssh-client sudo sshpass tmux libpam0g-dev procps passwd util-linux"
# e2e_metrics: node_exporter's textfile collector scrapes vigild's metrics file (its own
# process on 127.0.0.1, never the Debian service).
packages="$packages prometheus-node-exporter"
# e2e_fleet_relp: rsyslog's RELP modules (imrelp, omrelp) for two private rsyslogd
# forwarding to each other as docs/fleet.md configures them (no service of its own).
packages="$packages rsyslog-relp"
# The package and its tests under a real systemd (tests/container/run.sh). Installing
# systemd-container upgrades systemd 252.38 to 252.39 on Debian 12: harmless. polkitd
# and pkexec: the container's pkexec test (the container runs the machine's own root);
# cron: a locked user's cron job refused there (tests/container/pam_stacks.sh).
packages="$packages debhelper dpkg-dev lintian systemd-container polkitd pkexec cron"
# e2e_dbus_broker and the benchmarks' --brokers: the bus path under dbus-broker, which
# the harness starts itself (tests/src/bus.rs). Its postinst enables dbus-broker.service
# as the dbus.service alias (system and user): undone below, so that dbus-daemon stays
# the system bus of this machine and of the container stage (an overlay of this root).
packages="$packages dbus-broker"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "tests/run.sh: installing$missing"
    apt-get update -qq
    # policy-rc.d 101: do not start the packages' own services; the tests start
    # private instances on their own sockets and ports.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.vigil-tests
    chmod +x /usr/sbin/policy-rc.d.vigil-tests
    [ -e /usr/sbin/policy-rc.d ] || ln -s /usr/sbin/policy-rc.d.vigil-tests /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
    case " $missing " in
        *" dbus-broker "*)
            # deb-systemd-helper remembers the links as removed by the admin: upgrades
            # keep them off.
            systemctl disable dbus-broker.service >/dev/null 2>&1 || true
            systemctl --global disable dbus-broker.service >/dev/null 2>&1 || true
            ;;
    esac
    [ "$(readlink /usr/sbin/policy-rc.d 2>/dev/null)" = /usr/sbin/policy-rc.d.vigil-tests ] && rm -f /usr/sbin/policy-rc.d
    rm -f /usr/sbin/policy-rc.d.vigil-tests
fi

# The code gate: formatting (rustfmt.toml) and clippy with every warning an error; the
# module's, the host crate's and the daemon's shipped code may not unwrap, expect or
# panic ([lints] in their Cargo.toml; clippy.toml allows it in tests).
command -v cargo-clippy >/dev/null && command -v rustfmt >/dev/null || rustup component add clippy rustfmt
cargo fmt --all --check
cargo clippy --release --locked --workspace --all-targets -- -D warnings

# The module is built by cargo invocations of its own: in one with the daemon cargo
# unifies zbus's features and the daemon's tokio lands in libpam_vigil.so. Its build
# comes last, so that nothing overwrites the file the e2e tests load.
cargo build --release --locked --workspace --exclude pam_vigil --bins --lib
cargo test --release --locked --workspace --exclude vigil-e2e --exclude pam_vigil
cargo test --release --locked -p pam_vigil
cargo build --release --locked -p pam_vigil

# The e2e tests load $VIGIL_BIN_DIR/libpam_vigil.so (tests/src/paths.rs): that file
# must carry no async runtime.
target=${CARGO_TARGET_DIR:-$repo/target}
export VIGIL_BIN_DIR="${VIGIL_BIN_DIR:-$target/release}"
module="$VIGIL_BIN_DIR/libpam_vigil.so"
[ -f "$module" ] || { echo "tests/run.sh: FAIL: $module was not built" >&2; exit 1; }
tokio=$(grep -a -o tokio "$module" | wc -l)
if [ "$tokio" -ne 0 ]; then
    echo "tests/run.sh: FAIL: $module carries tokio ($tokio mentions): the module was built together with the daemon" >&2
    exit 1
fi
echo "tests/run.sh: $module carries no tokio"

# End-to-end tests one at a time: they time deadlines and share the machine. Each test
# declares what it exercised (tests/src/conformance.rs) under target/conformance.
export VIGIL_CONFORMANCE_DIR="$target/conformance"
rm -rf "$VIGIL_CONFORMANCE_DIR"
cargo test --release --locked -p vigil-e2e -- --test-threads=1

# The Debian package, built from the binaries the end-to-end tests just ran
# (VIGIL_PREBUILT=1: no second compile), checked by lintian. Then the README's install
# command itself, from a clean clone, in a container that stands for a fresh server
# under a real systemd, and the package's checks there (tests/container/run.sh; its
# cargo reuses this build's compiled dependencies; always torn down).
VIGIL_PREBUILT=1 VIGIL_BUILD_ONLY=1 CARGO_TARGET_DIR="$target" sh packaging/install.sh
deb="$target/debian/vigil_$(dpkg-parsechangelog -S Version)_$(dpkg-architecture -qDEB_HOST_ARCH).deb"
lintian --fail-on error,warning "$deb"
echo "tests/run.sh: lintian: no error, no warning (infos explained in debian/vigil.lintian-overrides)"
CARGO_TARGET_DIR="$target" sh tests/container/run.sh

# The documented-promises gate, last: every documented config key, vigilctl verb and
# flag, module argument, audit event and field is in tests/conformance.toml with the test
# that shows it (an e2e test, or the container stage for what only a real logind
# shows), that test exercised it in this run, and every record captured carried only
# the events and fields AUDIT.md lists.
"$target/release/conformance" check
