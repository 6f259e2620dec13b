#!/usr/bin/env bash
# Side-by-side benchmark: wrk -> DIRECT upstream vs wrk -> NGINX peer proxy vs
# wrk -> ETHGAS-SIDECAR, all on 127.0.0.1 against the same mock upstream
# (an nginx serving the ETHGas auth endpoints). See bench/README.md.
#
# Usage: bench/run.sh [--no-build] [-h|--help]
# Settings (env): DURATION ROUNDS CONNS NGINX_WORKERS TARGETS WARMUP
#                 WRK_THREADS NGINX_KEEPALIVE PAUSE SIDECAR_EXTRA_TOML
#                 SIDECAR_BIN RESULTS_FILE KEEP_TMP
set -euo pipefail

INVOCATION=$(printf '%q ' "$0" "$@")
INVOCATION=${INVOCATION% }

usage() {
    cat <<'EOF'
Usage: bench/run.sh [--no-build]

Runs wrk against the mock upstream directly, through an nginx peer proxy and
through ethgas-sidecar, interleaved over several rounds, and writes a markdown
report to bench/RESULTS.md.

Options:
  --no-build        do not run `cargo build --release --locked`
                    (target/release/ethgas-sidecar must already exist)
  -h, --help        this text

Environment (defaults in brackets):
  DURATION          wrk duration per measured run            [10s]
  ROUNDS            interleaved rounds; medians are reported  [3]
  CONNS             wrk concurrencies                         ["1 16 64 256"]
  TARGETS           any of: direct nginx sidecar              ["direct nginx sidecar"]
  NGINX_WORKERS     worker_processes of the nginx peer proxy  [auto]
  NGINX_KEEPALIVE   idle upstream keep-alive conns per worker [512]
  WARMUP            discarded warm-up before the first run of
                    each target/concurrency (0 = none)        [2s]
  WRK_THREADS       wrk threads (capped at the concurrency)   [2]
  PAUSE             seconds of rest between runs              [1]
  SIDECAR_EXTRA_TOML  extra TOML merged into the generated sidecar config
  SIDECAR_BIN       binary under test; implies --no-build
                    [target/release/ethgas-sidecar]
  RESULTS_FILE      where the report goes                     [bench/RESULTS.md]
  KEEP_TMP=1        keep the temp dir (configs, logs, raw wrk output)

Quick run:  DURATION=3s ROUNDS=1 bench/run.sh
EOF
}

BUILD=1
for arg in "$@"; do
    case $arg in
        --no-build) BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench/run.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-"1 16 64 256"}
TARGETS=${TARGETS:-"direct nginx sidecar"}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
NGINX_KEEPALIVE=${NGINX_KEEPALIVE:-512}
WARMUP=${WARMUP:-2s}
WRK_THREADS=${WRK_THREADS:-2}
PAUSE=${PAUSE:-1}
SIDECAR_EXTRA_TOML=${SIDECAR_EXTRA_TOML:-}
RESULTS_FILE=${RESULTS_FILE:-bench/RESULTS.md}
KEEP_TMP=${KEEP_TMP:-0}

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=$REPO_ROOT/bench
# SIDECAR_BIN overrides the binary under test (and implies --no-build).
SIDECAR_BIN_SET=0
if [[ -n ${SIDECAR_BIN:-} ]]; then
    BUILD=0
    SIDECAR_BIN_SET=1
else
    SIDECAR_BIN=$REPO_ROOT/target/release/ethgas-sidecar
fi
cd "$REPO_ROOT"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- validation
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer (got '$ROUNDS')"
[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "DURATION must look like 10s / 1m (got '$DURATION')"
[[ $WARMUP =~ ^(0|[1-9][0-9]*[smh]?)$ ]] || die "WARMUP must look like 2s, or 0 (got '$WARMUP')"
[[ $NGINX_WORKERS =~ ^(auto|[1-9][0-9]*)$ ]] || die "NGINX_WORKERS must be 'auto' or a number (got '$NGINX_WORKERS')"
[[ $NGINX_KEEPALIVE =~ ^[1-9][0-9]*$ ]] || die "NGINX_KEEPALIVE must be a positive integer"
[[ $WRK_THREADS =~ ^[1-9][0-9]*$ ]] || die "WRK_THREADS must be a positive integer"
[[ $PAUSE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "PAUSE must be a number of seconds"
read -r -a CONN_LIST <<<"$CONNS"
read -r -a TARGET_LIST <<<"$TARGETS"
((${#CONN_LIST[@]} > 0)) || die "CONNS is empty"
((${#TARGET_LIST[@]} > 0)) || die "TARGETS is empty"
for c in "${CONN_LIST[@]}"; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "CONNS entries must be positive integers (got '$c')"
done
declare -A seen=()
for t in "${TARGET_LIST[@]}"; do
    case $t in direct | nginx | sidecar) ;; *) die "unknown target '$t' (use direct, nginx, sidecar)" ;; esac
    [[ -z ${seen[$t]:-} ]] || die "target '$t' listed twice"
    seen[$t]=1
done
unset seen

# ------------------------------------------------------------- dependencies
for tool in nginx wrk curl python3 pgrep; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "$tool is missing: running bench/setup.sh"
        bash "$BENCH_DIR/setup.sh"
        break
    fi
done

# --------------------------------------------------------------------- build
if has_target sidecar; then
    if ((BUILD)); then
        log "cargo build --release --locked"
        cargo build --release --locked
    fi
    [[ -x $SIDECAR_BIN ]] || die "$SIDECAR_BIN not found (build it, or drop --no-build)"
fi

# ------------------------------------------------------ temp dir and cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ethgas-bench.XXXXXX")
chmod 0711 "$TMP" # nginx workers may run as nobody when we are root
STARTED=()         # pids (each its own process-group leader), in start order
WRK_PID=""

alive() {
    # true while $1 exists and is not a zombie
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [[ ${st:0:1} != Z ]]
}

stop_proc() {
    local pid=$1 grace=${2:-10} i
    if alive "$pid"; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < grace * 10; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            log "pid $pid did not stop after ${grace}s; killing it"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    # leftovers of the group (e.g. nginx workers of a killed master)
    if pgrep -g "$pid" >/dev/null 2>&1; then
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    set +e
    trap - EXIT INT TERM
    if [[ -n $WRK_PID ]] && alive "$WRK_PID"; then
        kill -TERM "$WRK_PID" 2>/dev/null
        wait "$WRK_PID" 2>/dev/null
    fi
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        stop_proc "${STARTED[i]}" 10
    done
    if [[ $KEEP_TMP == 1 ]]; then
        log "kept temp dir: $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Raise the fd limit for wrk, nginx and the sidecar (all children inherit it).
if [[ $(ulimit -n) != unlimited ]] && (($(ulimit -n) < 65536)); then
    hard=$(ulimit -Hn)
    if [[ $hard == unlimited ]] || ((hard >= 65536)); then
        ulimit -n 65536 || true
    else
        ulimit -n "$hard" || true
    fi
fi

# ---------------------------------------------------------- ports and token
read -r UPSTREAM_PORT PROXY_PORT SIDECAR_PORT ADMIN_PORT < <(
    python3 - <<'PY'
import socket
socks = []
for _ in range(4):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)
[[ -n ${ADMIN_PORT:-} ]] || die "could not pick free ports"

read -r TOKEN REFRESH < <(
    python3 - <<'PY'
import base64, json, os, time
def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
def jwt(payload):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{head}.{body}.{b64(os.urandom(32))}"
now = int(time.time())
print(jwt({"sub": "bench", "exp": now + 86400}),
      jwt({"sub": "bench", "typ": "refresh", "exp": now + 7 * 86400}))
PY
)
[[ -n ${REFRESH:-} ]] || die "could not generate the token"

# ------------------------------------------------------------------- nginx
sed_escape() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }

render() { # render TEMPLATE OUT KEY=VALUE...
    local tmpl=$1 out=$2 kv args=()
    shift 2
    for kv in "$@"; do
        args+=(-e "s|@@${kv%%=*}@@|$(sed_escape "${kv#*=}")|g")
    done
    sed "${args[@]}" "$tmpl" >"$out"
    if grep -q '@@[A-Z_]*@@' "$out"; then
        die "unrendered placeholder in $out: $(grep -o '@@[A-Z_]*@@' "$out" | sort -u | tr '\n' ' ')"
    fi
}

wait_http() { # wait_http PID PORT NAME LOGFILE
    local pid=$1 port=$2 name=$3 logf=$4 i
    for ((i = 0; i < 100; i++)); do
        if ! alive "$pid"; then
            tail -n 30 "$logf" >&2 || true
            die "$name exited during startup"
        fi
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 30 "$logf" >&2 || true
    die "$name did not start listening on 127.0.0.1:$port within 10s"
}

start_nginx() { # start_nginx NAME TEMPLATE PORT KEY=VALUE...  -> sets NGINX_PID
    local name=$1 tmpl=$2 port=$3 prefix=$TMP/$1
    shift 3
    mkdir -p "$prefix/logs" "$prefix/tmp"
    chmod 0755 "$prefix" "$prefix/tmp"
    render "$tmpl" "$prefix/nginx.conf" "PREFIX=$prefix" "$@"
    if ! nginx -q -t -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" \
        >"$prefix/logs/test.log" 2>&1; then
        cat "$prefix/logs/test.log" >&2
        die "nginx rejected the $name config ($prefix/nginx.conf)"
    fi
    setsid nginx -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" \
        >"$prefix/logs/stdout.log" 2>&1 </dev/null &
    NGINX_PID=$!
    STARTED+=("$NGINX_PID")
    wait_http "$NGINX_PID" "$port" "nginx $name" "$prefix/logs/error.log"
    log "nginx $name: pid $NGINX_PID on 127.0.0.1:$port"
}

NEED_PROXY=0
has_target nginx && NEED_PROXY=1

start_nginx upstream "$BENCH_DIR/nginx-upstream.conf.tmpl" "$UPSTREAM_PORT" \
    "UPSTREAM_PORT=$UPSTREAM_PORT" "TOKEN=$TOKEN" "REFRESH=$REFRESH"
UPSTREAM_PID=$NGINX_PID
PROXY_PID=""
if ((NEED_PROXY)); then
    start_nginx proxy "$BENCH_DIR/nginx-proxy.conf.tmpl" "$PROXY_PORT" \
        "PROXY_PORT=$PROXY_PORT" "UPSTREAM_PORT=$UPSTREAM_PORT" "TOKEN=$TOKEN" \
        "NGINX_WORKERS=$NGINX_WORKERS" "NGINX_KEEPALIVE=$NGINX_KEEPALIVE"
    PROXY_PID=$NGINX_PID
fi

# ------------------------------------------------------------------ sidecar
status_kb() { # status_kb PID FIELD -> value in kB from /proc/PID/status
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null
}

SIDECAR_PID=""
IDLE_RSS_KB=""
IDLE_HWM_KB=""
SIDECAR_VERSION=""
if has_target sidecar; then
    mkdir -p "$TMP/sidecar"
    printf 'bench-password\n' >"$TMP/sidecar/password"
    chmod 0600 "$TMP/sidecar/password"
    cat >"$TMP/sidecar/config.toml" <<EOF
[proxy]
listen = "127.0.0.1:$SIDECAR_PORT"
[upstream]
base_url = "http://127.0.0.1:$UPSTREAM_PORT"
[auth]
username = "bench"
password_file = "$TMP/sidecar/password"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[log]
level = "warn"
EOF
    if [[ -n $SIDECAR_EXTRA_TOML ]]; then
        # Merge, so that keys for existing sections ([upstream], [auth], ...)
        # work too; plain appending would repeat a table, which TOML forbids.
        printf '%s\n' "$SIDECAR_EXTRA_TOML" >"$TMP/sidecar/extra.toml"
        python3 - "$TMP/sidecar/config.toml" "$TMP/sidecar/extra.toml" <<'PY' ||
import json, sys, tomllib

base_path, extra_path = sys.argv[1], sys.argv[2]
with open(base_path, "rb") as f:
    cfg = tomllib.load(f)
try:
    with open(extra_path, "rb") as f:
        extra = tomllib.load(f)
except tomllib.TOMLDecodeError as e:
    sys.exit(f"SIDECAR_EXTRA_TOML is not valid TOML: {e}")

def merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = v
merge(cfg, extra)

def val(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(val(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items()) + "}"
    sys.exit(f"SIDECAR_EXTRA_TOML: unsupported value {v!r}")

def emit(out, table, path):
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        out.append("[" + ".".join(path) + "]")
    for k, v in scalars.items():
        out.append(f"{k} = {val(v)}")
    for k, v in tables.items():
        emit(out, v, path + [k])

lines = []
emit(lines, cfg, [])
with open(base_path, "w") as f:
    f.write("\n".join(lines) + "\n")
PY
            die "could not merge SIDECAR_EXTRA_TOML into the sidecar config"
    fi
    SIDECAR_VERSION=$(timeout 5 "$SIDECAR_BIN" --version 2>/dev/null </dev/null | head -n 1 || true)
    setsid "$SIDECAR_BIN" run --config "$TMP/sidecar/config.toml" \
        >"$TMP/sidecar/stdout.log" 2>"$TMP/sidecar/stderr.log" </dev/null &
    SIDECAR_PID=$!
    STARTED+=("$SIDECAR_PID")
    ready=0
    deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)); do
        if ! alive "$SIDECAR_PID"; then
            echo "----- sidecar stderr -----" >&2
            cat "$TMP/sidecar/stderr.log" >&2 || true
            die "the sidecar exited during startup (config: $TMP/sidecar/config.toml)"
        fi
        if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null; then
            ready=1
            break
        fi
        sleep 0.1
    done
    if ((!ready)); then
        echo "----- sidecar stderr -----" >&2
        cat "$TMP/sidecar/stderr.log" >&2 || true
        echo "----- /readyz -----" >&2
        curl -sS --max-time 1 "http://127.0.0.1:$ADMIN_PORT/readyz" >&2 || true
        die "the sidecar was not ready (GET /readyz != 200) within 20s"
    fi
    IDLE_RSS_KB=$(status_kb "$SIDECAR_PID" VmRSS)
    IDLE_HWM_KB=$(status_kb "$SIDECAR_PID" VmHWM)
    log "sidecar: pid $SIDECAR_PID on 127.0.0.1:$SIDECAR_PORT (admin $ADMIN_PORT), idle RSS ${IDLE_RSS_KB} kB"
fi

# ----------------------------------------------------------------- targets
declare -A PORT_OF=([direct]=$UPSTREAM_PORT [nginx]=$PROXY_PORT [sidecar]=$SIDECAR_PORT)
declare -A PID_OF=([direct]="" [nginx]=$PROXY_PID [sidecar]=$SIDECAR_PID)
PATH_INFO=/api/v1/user/info

target_headers() { # prints curl/wrk header args, one per line
    if [[ $1 == direct ]]; then
        printf '%s\n' -H "Authorization: Bearer $TOKEN"
    fi
}

# Sanity: the upstream refuses a missing token, every target gets a 200.
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$UPSTREAM_PORT$PATH_INFO")
[[ $code == 401 ]] || die "upstream without a token answered $code, expected 401"
for t in "${TARGET_LIST[@]}"; do
    mapfile -t hdr < <(target_headers "$t")
    code=$(curl -sS -o "$TMP/check-$t.json" -w '%{http_code}' --max-time 5 "${hdr[@]}" \
        "http://127.0.0.1:${PORT_OF[$t]}$PATH_INFO") || code=000
    if [[ $code != 200 ]] || ! grep -q user_bench "$TMP/check-$t.json"; then
        cat "$TMP/check-$t.json" >&2 2>/dev/null || true
        echo >&2
        [[ $t == sidecar ]] && tail -n 30 "$TMP/sidecar/stderr.log" >&2
        die "sanity check: GET $PATH_INFO via $t answered $code, expected 200 from the upstream"
    fi
done
log "sanity checks passed (${TARGET_LIST[*]})"

# ------------------------------------------------------------ measurement
group_ticks() { # utime+stime (clock ticks) summed over process group $1
    local pgid=$1 total=0 p st f
    [[ -n $pgid ]] || { echo 0; return; }
    for p in $(pgrep -g "$pgid" 2>/dev/null); do
        st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        st=${st##*) }
        read -r -a f <<<"$st"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

child_ticks() { # cutime+cstime of this shell: CPU of reaped children (wrk)
    local st f
    st=$(cat "/proc/$$/stat")
    st=${st##*) }
    read -r -a f <<<"$st"
    echo "$((f[13] + f[14]))"
}

machine_ticks() { # prints "total idle" from /proc/stat
    local _cpu user nice system idle iowait irq softirq steal _rest
    read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
    echo "$((user + nice + system + idle + iowait + irq + softirq + steal)) $((idle + iowait))"
}

RAW=$TMP/raw.tsv
printf 'kind\tround\tpos\ttarget\tconns\tthreads\trequests\tduration_us\tp50_us\tp90_us\tp99_us\tmax_us\tstatus\tconnect\tread\twrite\ttimeout\tproxy_ticks\tupstream_ticks\twrk_ticks\tmachine_total\tmachine_idle\n' >"$RAW"
mkdir -p "$TMP/wrk"

run_wrk() { # run_wrk KIND ROUND POS TARGET CONNS DURATION
    local kind=$1 round=$2 pos=$3 t=$4 c=$5 dur=$6
    local threads=$WRK_THREADS out line kv
    if ((threads > c)); then threads=$c; fi
    out=$TMP/wrk/$kind-r$round-$t-c$c.txt
    local hdr=()
    mapfile -t hdr < <(target_headers "$t")
    local p0 u0 w0 m0 p1 u1 w1 m1
    p0=$(group_ticks "${PID_OF[$t]}")
    u0=$(group_ticks "$UPSTREAM_PID")
    w0=$(child_ticks)
    m0=$(machine_ticks)
    wrk "-t$threads" "-c$c" "-d$dur" --latency -s "$BENCH_DIR/wrk-report.lua" "${hdr[@]}" \
        "http://127.0.0.1:${PORT_OF[$t]}$PATH_INFO" >"$out" 2>&1 </dev/null &
    WRK_PID=$!
    if ! wait "$WRK_PID"; then
        WRK_PID=""
        cat "$out" >&2
        die "wrk failed ($kind round $round, $t, c=$c)"
    fi
    WRK_PID=""
    p1=$(group_ticks "${PID_OF[$t]}")
    u1=$(group_ticks "$UPSTREAM_PID")
    m1=$(machine_ticks)
    w1=$(child_ticks)
    line=$(grep -m1 '^BENCH ' "$out") || { cat "$out" >&2; die "no BENCH line in wrk output ($out)"; }
    declare -A m=()
    local fields=()
    read -r -a fields <<<"${line#BENCH }"
    for kv in "${fields[@]}"; do m[${kv%%=*}]=${kv#*=}; done
    local mt0 mi0 mt1 mi1
    read -r mt0 mi0 <<<"$m0"
    read -r mt1 mi1 <<<"$m1"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$kind" "$round" "$pos" "$t" "$c" "$threads" "${m[requests]}" "${m[duration_us]}" \
        "${m[p50_us]}" "${m[p90_us]}" "${m[p99_us]}" "${m[max_us]}" "${m[status]}" \
        "${m[connect]}" "${m[read]}" "${m[write]}" "${m[timeout]}" \
        "$((p1 - p0))" "$((u1 - u0))" "$((w1 - w0))" "$((mt1 - mt0))" "$((mi1 - mi0))" >>"$RAW"
    log "$(awk -v k="$kind" -v r="$round" -v t="$t" -v c="$c" -v n="${m[requests]}" \
        -v d="${m[duration_us]}" -v p50="${m[p50_us]}" -v p99="${m[p99_us]}" \
        -v st="${m[status]}" -v se="$((m[connect] + m[read] + m[write] + m[timeout]))" \
        -v bt="$((mt1 - mt0))" -v bi="$((mi1 - mi0))" -v own="$((p1 - p0 + u1 - u0 + w1 - w0))" 'BEGIN {
            busy = (bt > 0) ? (100 * (bt - bi) / bt) : 0
            other = (bt > 0) ? (100 * (bt - bi - own) / bt) : 0
            if (other < 0) other = 0
            printf "%-7s r%-2s c=%-4s %-8s %10.0f req/s  p50 %8.3f ms  p99 %8.3f ms  non2xx %d  sockerr %d  cpu %3.0f%% (other %2.0f%%)",
                k, r, c, t, n / (d / 1e6), p50 / 1000, p99 / 1000, st, se, busy, other }')"
    if [[ -n ${PID_OF[$t]} ]] && ! alive "${PID_OF[$t]}"; then
        [[ $t == sidecar ]] && { echo "----- sidecar stderr -----" >&2; tail -n 50 "$TMP/sidecar/stderr.log" >&2; }
        die "FAIL: the $t process died during the run"
    fi
    sleep "$PAUSE"
}

# Is the machine idle? (Builds or other jobs on these few cores skew everything.)
read -r pt0 pi0 < <(machine_ticks)
sleep 1
read -r pt1 pi1 < <(machine_ticks)
PRE_BUSY=$(awk -v t="$((pt1 - pt0))" -v i="$((pi1 - pi0))" 'BEGIN { printf "%.0f", (t > 0) ? 100 * (t - i) / t : 0 }')
if ((PRE_BUSY > 15)); then
    log "WARNING: the machine is ${PRE_BUSY}% busy before the benchmark starts; results will be skewed"
    ps -eo pid,pcpu,etime,comm --sort=-pcpu 2>/dev/null | head -n 6 >&2 || true
fi

n_targets=${#TARGET_LIST[@]}
declare -A WARMED=()
START_TS=$(date +%s)
log "settings: DURATION=$DURATION ROUNDS=$ROUNDS CONNS=\"$CONNS\" TARGETS=\"$TARGETS\" NGINX_WORKERS=$NGINX_WORKERS WARMUP=$WARMUP"
for ((r = 1; r <= ROUNDS; r++)); do
    for c in "${CONN_LIST[@]}"; do
        for ((i = 0; i < n_targets; i++)); do
            # rotate the order every round so slow drift cancels out
            t=${TARGET_LIST[(i + r - 1) % n_targets]}
            if [[ $WARMUP != 0 && -z ${WARMED[$t/$c]:-} ]]; then
                run_wrk warmup "$r" "$((i + 1))" "$t" "$c" "$WARMUP"
                WARMED[$t/$c]=1
            fi
            run_wrk measure "$r" "$((i + 1))" "$t" "$c" "$DURATION"
        done
    done
done
ELAPSED=$(($(date +%s) - START_TS))

PEAK_HWM_KB=""
END_RSS_KB=""
if [[ -n $SIDECAR_PID ]]; then
    PEAK_HWM_KB=$(status_kb "$SIDECAR_PID" VmHWM)
    END_RSS_KB=$(status_kb "$SIDECAR_PID" VmRSS)
    if ! curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$ADMIN_PORT/readyz"; then
        log "WARNING: sidecar /readyz is not 200 after the runs"
    fi
fi

# ------------------------------------------------------------------ report
max_conns=0
for c in "${CONN_LIST[@]}"; do
    if ((c > max_conns)); then max_conns=$c; fi
done
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
[[ -n $cpu_model ]] || cpu_model=$(lscpu 2>/dev/null | awk -F': *' '/Model name/ { print $2; exit }' || true)
git_rev=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $git_rev != unknown && -n $(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    git_rev="$git_rev (uncommitted changes)"
fi
equiv="DURATION=$DURATION ROUNDS=$ROUNDS CONNS=\"$CONNS\" TARGETS=\"$TARGETS\" NGINX_WORKERS=$NGINX_WORKERS"
[[ $WARMUP != 2s ]] && equiv+=" WARMUP=$WARMUP"
[[ $NGINX_KEEPALIVE != 512 ]] && equiv+=" NGINX_KEEPALIVE=$NGINX_KEEPALIVE"
[[ $WRK_THREADS != 2 ]] && equiv+=" WRK_THREADS=$WRK_THREADS"
[[ $PAUSE != 1 ]] && equiv+=" PAUSE=$PAUSE"
[[ -n $SIDECAR_EXTRA_TOML ]] && has_target sidecar && equiv+=" SIDECAR_EXTRA_TOML=<below>"
if ((SIDECAR_BIN_SET)) && has_target sidecar; then equiv+=" SIDECAR_BIN=$(printf '%q' "$SIDECAR_BIN")"; fi
equiv+=" bench/run.sh"
((BUILD)) || equiv+=" --no-build"

export BENCH_DATE BENCH_INVOCATION BENCH_EQUIV BENCH_NPROC BENCH_KERNEL BENCH_CPU \
    BENCH_NGINX_VERSION BENCH_WRK_VERSION BENCH_DURATION BENCH_ROUNDS BENCH_CONNS \
    BENCH_TARGETS BENCH_NGINX_WORKERS BENCH_NGINX_KEEPALIVE BENCH_WARMUP \
    BENCH_WRK_THREADS BENCH_CLK_TCK BENCH_GIT BENCH_SIDECAR_VERSION \
    BENCH_IDLE_RSS_KB BENCH_IDLE_HWM_KB BENCH_PEAK_HWM_KB BENCH_END_RSS_KB \
    BENCH_MAX_CONNS BENCH_ELAPSED BENCH_EXTRA_TOML BENCH_MEM BENCH_PRE_BUSY
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
BENCH_INVOCATION=$INVOCATION
BENCH_EQUIV=$equiv
BENCH_NPROC=$(nproc)
BENCH_KERNEL=$(uname -r)
BENCH_CPU=${cpu_model:-unknown}
BENCH_MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
BENCH_NGINX_VERSION=$(nginx -v 2>&1 | head -n 1)
BENCH_WRK_VERSION=$({ wrk -v 2>&1 || true; } | head -n 1 | sed 's/ Copyright.*//')
BENCH_DURATION=$DURATION
BENCH_ROUNDS=$ROUNDS
BENCH_CONNS=$CONNS
BENCH_TARGETS=$TARGETS
BENCH_NGINX_WORKERS=$NGINX_WORKERS
BENCH_NGINX_KEEPALIVE=$NGINX_KEEPALIVE
BENCH_WARMUP=$WARMUP
BENCH_WRK_THREADS=$WRK_THREADS
BENCH_CLK_TCK=$(getconf CLK_TCK)
BENCH_GIT=$git_rev
BENCH_SIDECAR_VERSION=$SIDECAR_VERSION
BENCH_IDLE_RSS_KB=$IDLE_RSS_KB
BENCH_IDLE_HWM_KB=$IDLE_HWM_KB
BENCH_PEAK_HWM_KB=$PEAK_HWM_KB
BENCH_END_RSS_KB=$END_RSS_KB
BENCH_MAX_CONNS=$max_conns
BENCH_ELAPSED=$ELAPSED
BENCH_EXTRA_TOML=$SIDECAR_EXTRA_TOML
BENCH_PRE_BUSY=$PRE_BUSY

report_rc=0
python3 - "$RAW" >"$TMP/report.md" <<'PY' || report_rc=$?
import csv, os, statistics, sys

env = os.environ.get
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
for r in rows:
    for k in ("round", "pos", "conns", "threads", "requests", "duration_us", "status",
              "connect", "read", "write", "timeout", "proxy_ticks", "upstream_ticks", "wrk_ticks",
              "machine_total", "machine_idle"):
        r[k] = int(r[k])
    for k in ("p50_us", "p90_us", "p99_us", "max_us"):
        r[k] = float(r[k])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
    r["sockerr"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
    tick_us = 1e6 / int(env("BENCH_CLK_TCK", "100"))
    n = max(r["requests"], 1)
    r["proxy_us_req"] = r["proxy_ticks"] * tick_us / n if r["target"] != "direct" else None
    r["upstream_us_req"] = r["upstream_ticks"] * tick_us / n
    mt = r["machine_total"]
    r["busy"] = 100.0 * (mt - r["machine_idle"]) / mt if mt else 0.0
    own = r["proxy_ticks"] + r["upstream_ticks"] + r["wrk_ticks"]
    r["other"] = max(0.0, 100.0 * (mt - r["machine_idle"] - own) / mt) if mt else 0.0
    r["wrk_us_req"] = r["wrk_ticks"] * tick_us / n

ORDER = [t for t in ("direct", "nginx", "sidecar") if t in env("BENCH_TARGETS", "").split()]
conns = []
for c in (int(x) for x in env("BENCH_CONNS", "").split()):
    if c not in conns:
        conns.append(c)
meas = [r for r in rows if r["kind"] == "measure"]

def med(t, c, key):
    v = [r[key] for r in meas if r["target"] == t and r["conns"] == c and r[key] is not None]
    return statistics.median(v) if v else None

def f_rps(v):  return "–" if v is None else f"{v:,.0f}"
def f_ms(v):   return "–" if v is None else f"{v / 1000:.3f}"
def f_x(v):    return "–" if v is None else f"{v:.2f}×"
def f_us(v):   return "–" if v is None else f"{v:.1f}"
def f_pct(v):  return "–" if v is None else f"{v:.0f}%"
def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b

out = []
w = out.append
w("# ethgas-sidecar benchmark results")
w("")
w(f"- Date: {env('BENCH_DATE')}")
w(f"- Command: `{env('BENCH_INVOCATION')}`")
w(f"- Equivalent with all settings: `{env('BENCH_EQUIV')}`")
w(f"- Machine: {env('BENCH_NPROC')} CPUs ({env('BENCH_CPU')}), {env('BENCH_MEM')} RAM, kernel {env('BENCH_KERNEL')}")
w(f"- Tools: {env('BENCH_NGINX_VERSION')}; {env('BENCH_WRK_VERSION')}")
if "sidecar" in ORDER:
    w(f"- Sidecar: `{env('BENCH_SIDECAR_VERSION') or 'ethgas-sidecar'}` at git {env('BENCH_GIT')}"
      + (", with SIDECAR_EXTRA_TOML (below)" if env("BENCH_EXTRA_TOML") else ""))
else:
    w(f"- Git: {env('BENCH_GIT')}")
w(f"- Settings: DURATION={env('BENCH_DURATION')}, ROUNDS={env('BENCH_ROUNDS')}, "
  f"CONNS=\"{env('BENCH_CONNS')}\", TARGETS=\"{env('BENCH_TARGETS')}\", "
  f"NGINX_WORKERS={env('BENCH_NGINX_WORKERS')} (nginx keepalive {env('BENCH_NGINX_KEEPALIVE')}/worker), "
  f"WARMUP={env('BENCH_WARMUP')}, wrk threads=min({env('BENCH_WRK_THREADS')}, conns); "
  f"upstream nginx: 1 worker; wall time {env('BENCH_ELAPSED')}s; "
  f"machine {env('BENCH_PRE_BUSY')}% busy just before the start")
if "sidecar" in ORDER and env("BENCH_EXTRA_TOML"):
    w("- SIDECAR_EXTRA_TOML merged into the sidecar config:")
    w("")
    w("  ```toml")
    for line in env("BENCH_EXTRA_TOML").splitlines():
        w("  " + line)
    w("  ```")
w("- Load: `wrk -t2 -cC -dDURATION --latency http://127.0.0.1:PORT/api/v1/user/info` "
  "(direct adds `Authorization: Bearer <token>` itself; nginx and the sidecar inject it). "
  "Every number is the median over rounds; latency in ms.")
w("")

# main table
hdr = ["conns"]
hdr += [f"req/s {t}" for t in ORDER]
hdr += [f"p50 {t}" for t in ORDER]
hdr += [f"p99 {t}" for t in ORDER]
ratios = []
if "sidecar" in ORDER and "nginx" in ORDER:
    ratios += [("sidecar/nginx req/s", lambda c: ratio(med("sidecar", c, "rps"), med("nginx", c, "rps"))),
               ("sidecar/nginx p50", lambda c: ratio(med("sidecar", c, "p50_us"), med("nginx", c, "p50_us")))]
if "sidecar" in ORDER and "direct" in ORDER:
    ratios += [("sidecar/direct req/s", lambda c: ratio(med("sidecar", c, "rps"), med("direct", c, "rps")))]
if "nginx" in ORDER and "direct" in ORDER:
    ratios += [("nginx/direct req/s", lambda c: ratio(med("nginx", c, "rps"), med("direct", c, "rps")))]
hdr += [name for name, _ in ratios]
w("## Throughput and latency (median over rounds)")
w("")
w("| " + " | ".join(hdr) + " |")
w("|" + "|".join("---:" for _ in hdr) + "|")
for c in conns:
    cells = [str(c)]
    cells += [f_rps(med(t, c, "rps")) for t in ORDER]
    cells += [f_ms(med(t, c, "p50_us")) for t in ORDER]
    cells += [f_ms(med(t, c, "p99_us")) for t in ORDER]
    cells += [f_x(fn(c)) for _, fn in ratios]
    w("| " + " | ".join(cells) + " |")
w("")

# CPU table
w("## CPU cost (median over rounds)")
w("")
w("CPU time per request of the proxy under test (all its processes and threads) and of the "
  "upstream, from /proc/PID/stat. Machine busy = all CPUs, wrk included. Other = busy time "
  "not accounted to wrk, the upstream or the proxy under test (kernel softirq for loopback "
  "traffic, plus any foreign load: a few % is normal, much more means the run was disturbed).")
w("")
chdr = ["conns"]
ptargets = [t for t in ORDER if t != "direct"]
chdr += [f"proxy µs/req {t}" for t in ptargets]
chdr += [f"upstream µs/req {t}" for t in ORDER]
chdr += [f"machine busy {t}" for t in ORDER]
chdr += [f"other {t}" for t in ORDER]
w("| " + " | ".join(chdr) + " |")
w("|" + "|".join("---:" for _ in chdr) + "|")
for c in conns:
    cells = [str(c)]
    cells += [f_us(med(t, c, "proxy_us_req")) for t in ptargets]
    cells += [f_us(med(t, c, "upstream_us_req")) for t in ORDER]
    cells += [f_pct(med(t, c, "busy")) for t in ORDER]
    cells += [f_pct(med(t, c, "other")) for t in ORDER]
    w("| " + " | ".join(cells) + " |")
w("")

# errors
w("## Errors (all runs, warm-ups included)")
w("")
w("| target | runs | requests | non-2xx | connect | read | write | timeout |")
w("|---|---:|---:|---:|---:|---:|---:|---:|")
totals = {}
for t in ORDER:
    rs = [r for r in rows if r["target"] == t]
    tot = {k: sum(r[k] for r in rs) for k in ("requests", "status", "connect", "read", "write", "timeout")}
    totals[t] = tot
    w(f"| {t} | {len(rs)} | {tot['requests']:,} | {tot['status']} | {tot['connect']} | "
      f"{tot['read']} | {tot['write']} | {tot['timeout']} |")
w("")

# memory
if "sidecar" in ORDER:
    def mib(kb):
        return "–" if not kb else f"{int(kb) / 1024:.1f} MiB"
    w("## Sidecar memory")
    w("")
    w(f"- Idle RSS after readiness, before any load (VmRSS): {mib(env('BENCH_IDLE_RSS_KB'))}")
    w(f"- Peak RSS after all runs, up to {env('BENCH_MAX_CONNS')} connections (VmHWM): {mib(env('BENCH_PEAK_HWM_KB'))}")
    w(f"- RSS at the end, after the load stopped (VmRSS): {mib(env('BENCH_END_RSS_KB'))}")
    w("")

# verdict
fail = False
verdict = []
if "sidecar" in ORDER:
    s = totals["sidecar"]
    sock = s["connect"] + s["read"] + s["write"] + s["timeout"]
    if s["status"] or sock:
        fail = True
        verdict.append(f"**FAIL**: the sidecar had {s['status']} non-2xx responses and {sock} socket errors "
                       "(expected 0: every request must reach the upstream with the right token).")
    else:
        verdict.append("PASS: the sidecar answered every request with 200 (0 non-2xx, 0 socket errors).")
for t in ORDER:
    if t == "sidecar":
        continue
    s = totals[t]
    sock = s["connect"] + s["read"] + s["write"] + s["timeout"]
    if s["status"] or sock:
        verdict.append(f"WARNING: {t} had {s['status']} non-2xx responses and {sock} socket errors.")
other_limit = float(env("BENCH_OTHER_WARN", "15"))
disturbed = [r for r in meas if r["other"] > other_limit]
if disturbed:
    verdict.append(f"WARNING: {len(disturbed)} of {len(meas)} measured runs had more than "
                   f"{other_limit:.0f}% CPU used by something else (max {max(r['other'] for r in disturbed):.0f}%); "
                   "the machine was not idle, so rerun before trusting these numbers.")
pre = env("BENCH_PRE_BUSY", "")
if pre and float(pre) > other_limit:
    verdict.append(f"WARNING: the machine was {float(pre):.0f}% busy in the second before the benchmark started.")
if verdict:
    w("## Verdict")
    w("")
    for v in verdict:
        w(f"- {v}")
    w("")

# raw
w("<details><summary>Raw per-round results (measured runs)</summary>")
w("")
w("| round | conns | order | target | req/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx | socket err | proxy µs/req | upstream µs/req | wrk µs/req | busy | other |")
w("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in sorted(meas, key=lambda r: (r["round"], conns.index(r["conns"]) if r["conns"] in conns else 0, r["pos"])):
    w(f"| {r['round']} | {r['conns']} | {r['pos']} | {r['target']} | {f_rps(r['rps'])} | {f_ms(r['p50_us'])} | "
      f"{f_ms(r['p90_us'])} | {f_ms(r['p99_us'])} | {f_ms(r['max_us'])} | {r['status']} | {r['sockerr']} | "
      f"{f_us(r['proxy_us_req'])} | {f_us(r['upstream_us_req'])} | {f_us(r['wrk_us_req'])} | "
      f"{f_pct(r['busy'])} | {f_pct(r['other'])} |")
w("")
w("</details>")
print("\n".join(out))
sys.exit(3 if fail else 0)
PY
if [[ ! -s $TMP/report.md ]]; then
    die "report generation failed (python exit $report_rc); raw data: $RAW"
fi

echo
cat "$TMP/report.md"
echo
mkdir -p "$(dirname "$RESULTS_FILE")"
cp "$TMP/report.md" "$RESULTS_FILE"
log "report written to $RESULTS_FILE"

if [[ -n $SIDECAR_PID && -s $TMP/sidecar/stderr.log ]]; then
    log "the sidecar logged $(wc -l <"$TMP/sidecar/stderr.log") line(s) at warn or above; first 10:"
    head -n 10 "$TMP/sidecar/stderr.log" >&2
fi

if ((report_rc == 3)); then
    echo >&2
    echo "########################################################################" >&2
    echo "## FAIL: the sidecar returned non-2xx responses or socket errors.     ##" >&2
    echo "## See the Errors section above; every request must succeed.         ##" >&2
    echo "########################################################################" >&2
    exit 1
elif ((report_rc != 0)); then
    die "report generation failed (python exit $report_rc)"
fi
