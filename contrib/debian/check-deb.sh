#!/bin/sh
# Check a built ethgas-sidecar .deb the way an operator would meet it:
#   1. lintian: no errors (warnings and info are printed; deliberate ones are
#      overridden in contrib/debian/lintian-overrides, with the reason);
#   2. dpkg-deb --contents and the control fields, and the files that must be
#      there (binary, units, conffile, man pages, completions, copyright);
#   3. extracted into a temporary root: the binary runs and names its commit,
#      the shipped config passes check-config with the credential the unit
#      hands over, `systemd-analyze verify` of both units says nothing, and
#      the sandbox exposure of the installed unit stays low
#      (systemd/check-exposure.sh).
#
# Usage: contrib/debian/check-deb.sh target/debian/ethgas-sidecar_*.deb
# Needs: lintian, dpkg-deb, systemd-analyze (and man, for Documentation=).
set -eu

deb=${1:?usage: $0 PATH.deb}
[ -r "$deb" ] || { echo "check-deb: cannot read $deb" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT INT TERM
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }

echo "-- $(basename "$deb"): $(wc -c <"$deb") bytes"

echo "-- lintian"
# Errors fail the check; warnings and info are shown for the record.
rc=0
out=$(lintian --display-info --fail-on error "$deb" 2>&1) || rc=$?
printf '%s\n' "$out" | grep -v '^running with root privileges' || echo "(no tags)"
[ "$rc" -eq 0 ] || fail "lintian reports errors (above), exit $rc"

echo "-- dpkg-deb --info / --contents"
dpkg-deb --field "$deb" Package Version Architecture Depends Section
dpkg-deb --contents "$deb"
contents=$(dpkg-deb --contents "$deb" | awk '{print $6}')
for path in \
    ./usr/bin/ethgas-sidecar \
    ./usr/lib/systemd/system/ethgas-sidecar.service \
    ./usr/lib/systemd/system/ethgas-sidecar.socket \
    ./etc/ethgas-sidecar/config.toml \
    ./usr/share/man/man1/ethgas-sidecar.1.gz \
    ./usr/share/man/man1/ethgas-sidecar-status.1.gz \
    ./usr/share/bash-completion/completions/ethgas-sidecar \
    ./usr/share/zsh/vendor-completions/_ethgas-sidecar \
    ./usr/share/fish/vendor_completions.d/ethgas-sidecar.fish \
    ./usr/share/doc/ethgas-sidecar/copyright \
    ./usr/share/doc/ethgas-sidecar/changelog.Debian.gz \
    ./usr/share/doc/ethgas-sidecar/LICENSE-MIT \
    ./usr/share/doc/ethgas-sidecar/LICENSE-APACHE; do
    printf '%s\n' "$contents" | grep -qxF "$path" || fail "$path is not in the package"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qxF /etc/ethgas-sidecar/config.toml \
    || fail "/etc/ethgas-sidecar/config.toml is not a conffile"

echo "-- extracted into $root"
dpkg-deb --extract "$deb" "$root"
bin=$root/usr/bin/ethgas-sidecar
version=$("$bin" --version)
echo "$version"
case $version in
    "ethgas-sidecar "*" (commit "*")") ;;
    *) fail "--version says: $version" ;;
esac

# The shipped config with the credential the unit's LoadCredential= provides.
creds=$root/creds
mkdir -m 0700 "$creds"
printf 'not-the-password\n' >"$creds/password"
CREDENTIALS_DIRECTORY=$creds "$bin" check-config --config "$root/etc/ethgas-sidecar/config.toml" >/dev/null \
    || fail "the shipped config does not pass check-config with the unit's credential"
echo "check-config: the shipped config is valid with the credential \"password\""

echo "-- systemd-analyze verify (installed units)"
# The units name /usr/bin/ethgas-sidecar, which is in the extracted root, not
# on this host: verify a copy that points into the root. Documentation= is
# checked with man against the extracted man pages.
units=$root/verify
mkdir "$units"
cp "$root/usr/lib/systemd/system/ethgas-sidecar.service" "$root/usr/lib/systemd/system/ethgas-sidecar.socket" "$units/"
sed -i "s#^ExecStart=/usr/bin/ethgas-sidecar #ExecStart=$bin #" "$units/ethgas-sidecar.service"
man_opt=--man=yes
command -v man >/dev/null 2>&1 || man_opt=--man=no
out=$(MANPATH=$root/usr/share/man systemd-analyze verify "$man_opt" \
    "$units/ethgas-sidecar.service" "$units/ethgas-sidecar.socket" 2>&1) \
    || { printf '%s\n' "$out" >&2; fail "systemd-analyze verify failed"; }
# It only warns about unknown keys and bad values, with exit status 0.
[ -z "$out" ] || { printf '%s\n' "$out" >&2; fail "systemd-analyze verify has complaints (above)"; }
echo "verify: ethgas-sidecar.service, ethgas-sidecar.socket: no complaints"

echo "-- sandbox exposure (installed unit)"
"$repo/systemd/check-exposure.sh" "$root/usr/lib/systemd/system/ethgas-sidecar.service"
echo "check-deb: OK"
