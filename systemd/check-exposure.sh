#!/bin/sh
# Fail if the sandbox of systemd/ethgas-sidecar.service or of the template
# systemd/ethgas-sidecar@.service got weaker.
#
# Runs `systemd-analyze security --offline=true` on each unit file (no running
# systemd needed; a template is scored as its instance "exposure-check"),
# prints the overall exposure and exits
#   0  exposure <= MAX (default 1.5) for every unit
#   1  exposure above MAX, or the output could not be parsed
#   2  systemd-analyze is not installed (`apt-get install -y systemd`);
#      exits 0 instead when ETHGAS_SKIP_SYSTEMD_ANALYZE=1 is set.
#
# Usage: systemd/check-exposure.sh [UNIT_FILE...]   (from any directory;
#        default: both units next to this script)
# Env:   ETHGAS_EXPOSURE_MAX=1.5  ETHGAS_SKIP_SYSTEMD_ANALYZE=1
set -u

if ! command -v systemd-analyze >/dev/null 2>&1; then
    if [ "${ETHGAS_SKIP_SYSTEMD_ANALYZE:-}" = 1 ]; then
        echo "check-exposure: systemd-analyze not found; skipped (ETHGAS_SKIP_SYSTEMD_ANALYZE=1)" >&2
        exit 0
    fi
    echo "check-exposure: systemd-analyze not found; install it with 'apt-get install -y systemd'," >&2
    echo "  or set ETHGAS_SKIP_SYSTEMD_ANALYZE=1 to skip this check" >&2
    exit 2
fi

case $0 in
    */*) here=${0%/*} ;;
    *) here=. ;;
esac
[ $# -gt 0 ] || set -- "$here/ethgas-sidecar.service" "$here/ethgas-sidecar@.service"
max=${ETHGAS_EXPOSURE_MAX:-1.5}

# One unit file: prints what counts against it and the verdict; 0 or 1.
check() {
    unit=$1
    if [ ! -r "$unit" ]; then
        echo "check-exposure: cannot read unit file $unit" >&2
        return 1
    fi
    # A template (NAME@.service) is only analysed as an instance: name one,
    # which systemd-analyze then reads from the template in the same directory.
    case $unit in
        *@.service) target=${unit%@.service}@exposure-check.service ;;
        *) target=$unit ;;
    esac

    # Plain output: no colours, no pager, C locale for the decimal point.
    out=$(LC_ALL=C SYSTEMD_COLORS=0 SYSTEMD_PAGER=cat \
          systemd-analyze security --no-pager --offline=true -- "$target" 2>&1)
    rc=$?

    # In the C locale: "-> Overall exposure level for ethgas-sidecar.service: 1.0 OK :-)"
    line=$(printf '%s\n' "$out" | grep 'Overall exposure level' | tail -n 1)
    score=$(printf '%s\n' "$line" | sed -n 's/.*Overall exposure level for [^:]*: *\([0-9][0-9]*\(\.[0-9]*\)\{0,1\}\).*/\1/p')

    if [ -z "$score" ]; then
        printf '%s\n' "$out" >&2
        echo "check-exposure: could not find the overall exposure in the output above (systemd-analyze exit $rc)" >&2
        return 1
    fi

    # Show what still counts against the score ("- " lines), then the verdict.
    printf '%s\n' "$out" | grep '^- ' || true
    echo "$line"
    if awk -v s="$score" -v m="$max" 'BEGIN { exit !(s + 0 <= m + 0) }'; then
        echo "check-exposure: OK: exposure $score <= $max for $unit"
        return 0
    fi
    echo "check-exposure: FAIL: exposure $score > $max for $unit" >&2
    return 1
}

status=0
for unit in "$@"; do
    check "$unit" || status=1
done
exit $status
