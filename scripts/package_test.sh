#!/usr/bin/env bash
# Builds the Debian package from a build directory and checks it: the files it must lay out, its dependencies,
# the settings files kept as conffiles and private, and a unit that systemd accepts.
#   scripts/package_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
(cd "$out" && cpack -G DEB --config "$build/CPackConfig.cmake" >"$out/cpack.log" 2>&1) ||
  { cat "$out/cpack.log"; exit 1; }
deb=$(ls "$out"/*.deb)
fail() { echo "package: $*" >&2; exit 1; }
contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/ferry ./usr/lib/systemd/system/ferry.service ./etc/ferry/ferry.env ./etc/ferry/tokens.txt \
            ./usr/include/ferry/function.h ./usr/lib/cmake/ferry/ferryConfig.cmake ./usr/share/doc/ferry/README.md; do
  grep -q " $path\$" <<<"$contents" || fail "missing $path"
done
grep -E " \./etc/ferry/tokens.txt$" <<<"$contents" | grep -q '^-rw-------' || fail "tokens.txt is not 0600"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libpq5 libsqlite3; do grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"; done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/ferry/tokens.txt || fail "tokens.txt is no conffile"
# systemd's own check of the unit, its ExecStart pointed at the package's binary (not installed here).
root="$out/root"
dpkg-deb -x "$deb" "$root"
mkdir "$out/unit"
sed "s#/usr/bin/ferry#$root/usr/bin/ferry#" "$root/usr/lib/systemd/system/ferry.service" >"$out/unit/ferry.service"
systemd-analyze verify --man=no "$out/unit/ferry.service" || fail "systemd-analyze verify refused the unit"
echo "package: $(basename "$deb") has what it must, and systemd accepts its unit"
