#!/bin/sh
# Fail if the sandbox of systemd/ethgas-sidecar.service got weaker.
#
# Runs `systemd-analyze security --offline=true` on the unit file (no running
# systemd needed), prints the overall exposure and exits
#   0  exposure <= MAX (default 1.5)
#   1  exposure above MAX, or the output could not be parsed
#   2  systemd-analyze is not installed (`apt-get install -y systemd`);
#      exits 0 instead when ETHGAS_SKIP_SYSTEMD_ANALYZE=1 is set.
#
# Usage: systemd/check-exposure.sh [UNIT_FILE]   (from any directory)
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
unit=${1:-"$here/ethgas-sidecar.service"}
max=${ETHGAS_EXPOSURE_MAX:-1.5}

if [ ! -r "$unit" ]; then
    echo "check-exposure: cannot read unit file $unit" >&2
    exit 1
fi

# Plain output: no colours, no pager, C locale for the decimal point.
out=$(LC_ALL=C SYSTEMD_COLORS=0 SYSTEMD_PAGER=cat \
      systemd-analyze security --no-pager --offline=true -- "$unit" 2>&1)
rc=$?

# In the C locale: "-> Overall exposure level for ethgas-sidecar.service: 1.0 OK :-)"
line=$(printf '%s\n' "$out" | grep 'Overall exposure level' | tail -n 1)
score=$(printf '%s\n' "$line" | sed -n 's/.*Overall exposure level for [^:]*: *\([0-9][0-9]*\(\.[0-9]*\)\{0,1\}\).*/\1/p')

if [ -z "$score" ]; then
    printf '%s\n' "$out" >&2
    echo "check-exposure: could not find the overall exposure in the output above (systemd-analyze exit $rc)" >&2
    exit 1
fi

# Show what still counts against the score ("- " lines), then the verdict.
printf '%s\n' "$out" | grep '^- ' || true
echo "$line"
if awk -v s="$score" -v m="$max" 'BEGIN { exit !(s + 0 <= m + 0) }'; then
    echo "check-exposure: OK: exposure $score <= $max"
    exit 0
fi
echo "check-exposure: FAIL: exposure $score > $max for $unit" >&2
exit 1
