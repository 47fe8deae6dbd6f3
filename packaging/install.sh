#!/bin/sh
# Builds the vigil Debian package and installs it with apt, which starts vigild.
# Run as root from the repository:   sh packaging/install.sh
# It never turns vigil on in a PAM stack: pam-auth-update --enable vigil (README.md).
# VIGIL_BUILD_ONLY=1: build the package, do not install it. VIGIL_PREBUILT=1: package
# the binaries already in the target directory (tests/run.sh, after its own build).
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
command -v cargo >/dev/null || { echo "install.sh: cargo not found; install Rust with rustup (https://rustup.rs)" >&2; exit 1; }

# Build dependencies: debhelper and libpam's development files (the module links libpam).
missing=""
for p in debhelper dpkg-dev libpam0g-dev; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi

# debian/rules builds with cargo (the module in an invocation of its own) and refuses a
# module that carries tokio. dpkg-buildpackage writes beside the clone; the files are
# moved into the target directory.
target=${CARGO_TARGET_DIR:-$repo/target}
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
dpkg-buildpackage -b -us -uc
out="$target/debian"
mkdir -p "$out"
for f in "../vigil_${version}_${arch}.deb" "../vigil_${version}_${arch}.buildinfo" "../vigil_${version}_${arch}.changes"; do
    [ -e "$f" ] && mv -f "$f" "$out/"
done
deb="$out/vigil_${version}_${arch}.deb"
echo "install.sh: built $deb"

[ "${VIGIL_BUILD_ONLY:-}" = 1 ] && exit 0
DEBIAN_FRONTEND=noninteractive apt-get install -y --allow-downgrades --reinstall "$deb"
/usr/bin/vigilctl daemon
echo "Turn vigil on for logins:  pam-auth-update --enable vigil   (see README.md)"
echo "Refuse locked users too:   pam-auth-update --enable vigil-lock"
