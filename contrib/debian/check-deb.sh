#!/bin/sh
# Check a built ethgas-sidecar .deb the way an operator would meet it:
#   1. lintian: no errors (warnings and info are printed; deliberate ones are
#      overridden in contrib/debian/lintian-overrides, with the reason);
#   2. the maintainer scripts: postinst, prerm and postrm exist and carry the
#      systemd snippets (daemon-reload; try-restart of running units after an
#      upgrade, instances of the template included; stop on removal;
#      deb-systemd-helper purge of the enable links), and none enables or
#      starts anything at install. cargo-deb writes them only when
#      [package.metadata.deb] sets maintainer-scripts, so a package built
#      without it fails here;
#   3. dpkg-deb --contents and the control fields, and the files that must be
#      there (binary, units and templates, conffile, man pages, completions,
#      copyright, the wallet drop-ins);
#   4. extracted into a temporary root: the binary runs and names its commit,
#      carries none of the test harness's endpoints or fault markers,
#      the shipped config passes check-config with the credential the unit
#      hands over, `systemd-analyze verify` says nothing about the units, an
#      instance of each template, and both units with the wallet drop-ins, and
#      the sandbox exposure of the installed unit and template stays low
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

echo "-- maintainer scripts"
control=$root/control
dpkg-deb --control "$deb" "$control"
# What one script must contain: a line of the snippet, and why it matters.
expect() {
    grep -qF -- "$2" "$control/$1" || fail "$1 lacks \`$2\` ($3)"
}
for script in postinst prerm postrm; do
    [ -f "$control/$script" ] || fail "no $script in the package: is maintainer-scripts set in [package.metadata.deb]? (cargo-deb writes the systemd snippets only then)"
    [ -x "$control/$script" ] || fail "$script is not executable"
    sh -n "$control/$script" || fail "$script is not valid sh"
    ! grep -q '#DEBHELPER#' "$control/$script" || fail "$script still has #DEBHELPER#: cargo-deb did not fill it in"
done
expect postinst 'deb-systemd-helper update-state ethgas-sidecar.service' "records the enable links for purge"
expect postinst 'deb-systemd-helper update-state ethgas-sidecar.socket' "records the enable links for purge"
expect postinst 'systemctl --system daemon-reload' "systemd sees the new units"
expect postinst 'deb-systemd-invoke try-restart ethgas-sidecar.service ethgas-sidecar.socket' "an upgrade restarts the running units"
expect postinst "deb-systemd-invoke try-restart 'ethgas-sidecar@*.service' 'ethgas-sidecar@*.socket'" "an upgrade restarts the running instances"
expect prerm 'deb-systemd-invoke stop ethgas-sidecar.service ethgas-sidecar.socket' "removal stops the units"
expect prerm "deb-systemd-invoke stop 'ethgas-sidecar@*.socket' 'ethgas-sidecar@*.service'" "removal stops the instances"
expect postrm 'deb-systemd-helper purge ethgas-sidecar.service ethgas-sidecar.socket' "purge deletes the enable links"
expect postrm 'deb-systemd-helper mask ethgas-sidecar.service ethgas-sidecar.socket' "removal keeps them from starting"
expect postrm '*/systemd/system/ethgas-sidecar@.service' "purge deletes the instances' enable links"
expect postrm 'systemctl --system daemon-reload' "systemd forgets the removed units"
# Installed, not enabled or started: the service needs credentials first.
if grep -nE 'deb-systemd-invoke (start|\$_dh_action)|was-enabled defaults to true' "$control/postinst"; then
    fail "postinst enables or starts a unit at install (above); the units must stay off until configured"
fi
echo "postinst, prerm, postrm: the systemd snippets are there; nothing is enabled or started"

echo "-- dpkg-deb --info / --contents"
dpkg-deb --info "$deb" | sed -n '/^ *[0-9]* bytes,/p'
dpkg-deb --field "$deb" Package Version Architecture Depends Section
dpkg-deb --contents "$deb"
contents=$(dpkg-deb --contents "$deb" | awk '{print $6}')
for path in \
    ./usr/bin/ethgas-sidecar \
    ./usr/lib/systemd/system/ethgas-sidecar.service \
    ./usr/lib/systemd/system/ethgas-sidecar.socket \
    ./usr/lib/systemd/system/ethgas-sidecar@.service \
    ./usr/lib/systemd/system/ethgas-sidecar@.socket \
    ./usr/share/doc/ethgas-sidecar/examples/wallet.conf \
    ./usr/share/doc/ethgas-sidecar/examples/wallet@.conf \
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

# The test harness stays out of the shipped binary: the mock API's test-only
# endpoints (ethgas-mock's feature test-util) and the process's fault hooks
# (src/fault.rs, ethgas-sidecar's feature test-util) compile to nothing
# without the feature, so none of their strings may be in it.
for marker in /api/v1/mock/upload /api/v1/mock/download /api/v1/mock/slow \
    ETHGAS_SIDECAR_TEST_FAULT panic-after-login wedge-worker-; do
    ! grep -qaF -- "$marker" "$bin" \
        || fail "the binary contains \"$marker\": it was built with the test harness (feature test-util)"
done
echo "test harness: none of its endpoints or fault markers is in the binary"

# The shipped config as installed is refused until its placeholder username
# is replaced, naming the key; with a username and the credential the unit's
# LoadCredential= provides, it passes.
creds=$root/creds
mkdir -m 0700 "$creds"
printf 'not-the-password\n' >"$creds/password"
shipped=$root/etc/ethgas-sidecar/config.toml
if out=$(CREDENTIALS_DIRECTORY=$creds "$bin" check-config --config "$shipped" 2>&1); then
    fail "the shipped config passes check-config with its placeholder username"
fi
case $out in
    *auth.username*) ;;
    *) fail "check-config on the shipped config does not name auth.username: $out" ;;
esac
edited=$root/edited.toml
sed 's/^username = "your_username"/username = "alice"/' "$shipped" >"$edited"
chmod 0644 "$edited"
CREDENTIALS_DIRECTORY=$creds "$bin" check-config --config "$edited" >/dev/null \
    || fail "the shipped config with a username does not pass check-config with the unit's credential"
echo "check-config: the shipped config names auth.username until it is set, then is valid with the credential \"password\""

echo "-- systemd-analyze verify (installed units)"
# The units name /usr/bin/ethgas-sidecar, which is in the extracted root, not
# on this host: verify a copy that points into the root. Documentation= is
# checked with man against the extracted man pages. A template is verified as
# an instance (hoodi), which systemd-analyze reads from the template.
units=$root/verify
mkdir "$units"
for unit in ethgas-sidecar.service ethgas-sidecar.socket ethgas-sidecar@.service ethgas-sidecar@.socket; do
    cp "$root/usr/lib/systemd/system/$unit" "$units/"
done
sed -i "s#^ExecStart=/usr/bin/ethgas-sidecar #ExecStart=$bin #" "$units/ethgas-sidecar.service" "$units/ethgas-sidecar@.service"
man_opt=--man=yes
command -v man >/dev/null 2>&1 || man_opt=--man=no
verify() {
    out=$(MANPATH=$root/usr/share/man systemd-analyze verify "$man_opt" "$@" 2>&1) \
        || { printf '%s\n' "$out" >&2; fail "systemd-analyze verify failed"; }
    # It only warns about unknown keys and bad values, with exit status 0.
    [ -z "$out" ] || { printf '%s\n' "$out" >&2; fail "systemd-analyze verify has complaints (above)"; }
}
verify "$units/ethgas-sidecar.service" "$units/ethgas-sidecar.socket" \
    "$units/ethgas-sidecar@hoodi.service" "$units/ethgas-sidecar@hoodi.socket"
echo "verify: ethgas-sidecar.service, .socket, ethgas-sidecar@hoodi.service, @hoodi.socket: no complaints"
# The wallet drop-ins as the README installs them.
mkdir "$units/ethgas-sidecar.service.d" "$units/ethgas-sidecar@.service.d"
cp "$root/usr/share/doc/ethgas-sidecar/examples/wallet.conf" "$units/ethgas-sidecar.service.d/wallet.conf"
cp "$root/usr/share/doc/ethgas-sidecar/examples/wallet@.conf" "$units/ethgas-sidecar@.service.d/wallet.conf"
verify "$units/ethgas-sidecar.service" "$units/ethgas-sidecar@hoodi.service"
echo "verify: with the wallet drop-ins (examples/wallet.conf, wallet@.conf): no complaints"

echo "-- sandbox exposure (installed unit and template)"
"$repo/systemd/check-exposure.sh" "$root/usr/lib/systemd/system/ethgas-sidecar.service" \
    "$root/usr/lib/systemd/system/ethgas-sidecar@.service"
echo "check-deb: OK"
