#!/usr/bin/env bash
# Side-by-side benchmark: wrk -> DIRECT upstream vs wrk -> NGINX peer proxy vs
# wrk -> ETHGAS-SIDECAR, all on 127.0.0.1 against the same mock upstream
# (an nginx serving the ETHGas auth endpoints), over plain HTTP, HTTPS, or
# both. See bench/README.md.
#
# This file only orchestrates: it starts and stops the processes, runs wrk
# and curl over the rounds and connection counts, and collects the raw
# numbers in a run directory. The programs are next to it:
#   setup.sh     installs missing tools (called only when one is missing)
#   procs.sh     sourced: starting, watching and stopping the processes, /proc
#   mkconfig.py  free ports, the run's tokens, the sidecar's config
#   report.py    the run directory -> the markdown report (bench/RESULTS.md)
#
# Usage: bench/run.sh [--no-build] [-h|--help]
# Settings (env): DURATION ROUNDS CONNS TARGETS UPSTREAM NGINX_WORKERS
#                 NGINX_KEEPALIVE WARMUP WRK_THREADS PAUSE SETTLE_SECONDS
#                 WARM WARM_INTERVAL WARM_COUNT COST COST_DURATION COST_TOOL
#                 OTHER_WARN SIDECAR_EXTRA_TOML SIDECAR_BIN RESULTS_FILE KEEP_TMP
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
  CONNS             wrk concurrencies, ascending              ["1 16 64 256"]
  TARGETS           any of: direct nginx sidecar              ["direct nginx sidecar"]
  UPSTREAM          plain, tls (HTTPS + HTTP/2 upstream), or
                    both (tls, then plain, in one run)        [plain]
  NGINX_WORKERS     worker_processes of the nginx peer proxy  [auto]
  NGINX_KEEPALIVE   idle upstream keep-alive conns per worker [512]
  WARMUP            discarded warm-up before the first run of
                    each target/concurrency (0 = none)        [2s]
  WRK_THREADS       wrk threads (capped at the concurrency)   [2]
  PAUSE             seconds of rest between runs              [1]
  SETTLE_SECONDS    after the sidecar's last run, sample its
                    RSS every second this long (0 = off)      [120]
  WARM=1            warm-path case: one request every
                    WARM_INTERVAL seconds, WARM_COUNT times   [0]
  WARM_INTERVAL     seconds between warm-path requests        [30]
  WARM_COUNT        warm-path requests per target             [6]
  COST              per-request system cost of nginx and the
                    sidecar: one wrk -t1 -c1 run each under
                    perf stat (or strace -c); auto = when
                    CONNS contains 1; 0 = off, 1 = always     [auto]
  COST_DURATION     length of each of those runs              [5s]
  COST_TOOL         auto (perf, else strace), perf or strace  [auto]
  OTHER_WARN        % of foreign CPU load that flags a run    [15]
  SIDECAR_EXTRA_TOML  extra TOML merged into the generated sidecar config
  SIDECAR_BIN       binary under test; implies --no-build
                    [target/release/ethgas-sidecar]
  RESULTS_FILE      where the report goes                     [bench/RESULTS.md]
  KEEP_TMP=1        keep the run directory (configs, logs, raw output);
                    bench/report.py RUN_DIR prints its report again

Quick run:  DURATION=3s ROUNDS=1 SETTLE_SECONDS=0 bench/run.sh
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
UPSTREAM=${UPSTREAM:-plain}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
NGINX_KEEPALIVE=${NGINX_KEEPALIVE:-512}
WARMUP=${WARMUP:-2s}
WRK_THREADS=${WRK_THREADS:-2}
PAUSE=${PAUSE:-1}
SETTLE_SECONDS=${SETTLE_SECONDS:-120}
WARM=${WARM:-0}
WARM_INTERVAL=${WARM_INTERVAL:-30}
WARM_COUNT=${WARM_COUNT:-6}
COST=${COST:-auto}
COST_DURATION=${COST_DURATION:-5s}
COST_TOOL=${COST_TOOL:-auto}
OTHER_WARN=${OTHER_WARN:-15}
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
mkconfig() { python3 "$BENCH_DIR/mkconfig.py" "$@"; }
report() { python3 "$BENCH_DIR/report.py" "$@"; }
# shellcheck source=bench/procs.sh
source "$BENCH_DIR/procs.sh"

# ---------------------------------------------------------------- validation
[[ -n ${EPOCHREALTIME:-} ]] || die "bash 5 or newer is needed (EPOCHREALTIME)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer (got '$ROUNDS')"
[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "DURATION must look like 10s / 1m (got '$DURATION')"
[[ $WARMUP =~ ^(0|[1-9][0-9]*[smh]?)$ ]] || die "WARMUP must look like 2s, or 0 (got '$WARMUP')"
[[ $NGINX_WORKERS =~ ^(auto|[1-9][0-9]*)$ ]] || die "NGINX_WORKERS must be 'auto' or a number (got '$NGINX_WORKERS')"
[[ $NGINX_KEEPALIVE =~ ^[1-9][0-9]*$ ]] || die "NGINX_KEEPALIVE must be a positive integer"
[[ $WRK_THREADS =~ ^[1-9][0-9]*$ ]] || die "WRK_THREADS must be a positive integer"
[[ $PAUSE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "PAUSE must be a number of seconds"
int_in() { [[ $1 =~ ^(0|[1-9][0-9]*)$ ]] && (($1 >= $2 && $1 <= $3)); } # int_in VALUE MIN MAX
int_in "$SETTLE_SECONDS" 0 3600 || die "SETTLE_SECONDS must be 0..3600 (got '$SETTLE_SECONDS')"
int_in "$WARM" 0 1 || die "WARM must be 0 or 1 (got '$WARM')"
int_in "$WARM_INTERVAL" 1 3600 || die "WARM_INTERVAL must be 1..3600 seconds (got '$WARM_INTERVAL')"
int_in "$WARM_COUNT" 1 100 || die "WARM_COUNT must be 1..100 (got '$WARM_COUNT')"
[[ $COST =~ ^(auto|0|1)$ ]] || die "COST must be auto, 0 or 1 (got '$COST')"
[[ $COST_DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "COST_DURATION must look like 5s (got '$COST_DURATION')"
[[ $COST_TOOL =~ ^(auto|perf|strace)$ ]] || die "COST_TOOL must be auto, perf or strace (got '$COST_TOOL')"
int_in "$OTHER_WARN" 0 100 || die "OTHER_WARN must be a percentage, 0..100 (got '$OTHER_WARN')"
case $UPSTREAM in
    plain) MODES=(plain) ;;
    tls) MODES=(tls) ;;
    # HTTPS first: it is the mode users run, and the report shows it first.
    both) MODES=(tls plain) ;;
    *) die "UPSTREAM must be plain, tls or both (got '$UPSTREAM')" ;;
esac
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
COST_ON=0 # the per-request cost runs: they need a proxy to attach to
if [[ $COST == 1 || ($COST == auto && " $CONNS " == *" 1 "*) ]] && { has_target nginx || has_target sidecar; }; then
    COST_ON=1
fi

# ------------------------------------------------------- tools and the build
for tool in nginx wrk curl openssl python3 pgrep; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "$tool is missing: running bench/setup.sh"
        bash "$BENCH_DIR/setup.sh"
        break
    fi
done
if ((COST_ON)) && ! command -v perf >/dev/null 2>&1; then
    log "perf is missing (COST): running bench/setup.sh perf"
    bash "$BENCH_DIR/setup.sh" perf || log "WARNING: no perf; the cost runs fall back to strace -c"
fi

if has_target sidecar; then
    if ((BUILD)); then
        log "cargo build --release --locked"
        cargo build --release --locked
    fi
    [[ -x $SIDECAR_BIN ]] || die "$SIDECAR_BIN not found (build it, or drop --no-build)"
fi

# ------------------------------------------------------ run dir and cleanup
RUN=$(mktemp -d "${TMPDIR:-/tmp}/ethgas-bench.XXXXXX")
chmod 0711 "$RUN" # nginx workers may run as nobody when we are root
STARTED=()         # pids of the current mode (each a process-group leader), in start order
WRK_PID=""
SAMPLER_PID=""     # the after-burst RSS sampler (not our child: see start_sampler)
SAMPLER_DONE=""    # the file it creates when it has finished

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ -n $WRK_PID ]] && alive "$WRK_PID"; then
        kill -TERM "$WRK_PID" 2>/dev/null
        wait "$WRK_PID" 2>/dev/null
    fi
    counter_stop
    stop_sampler
    # the sidecar first (it logs out), then the nginx peer, then the upstream
    stop_started
    if [[ $KEEP_TMP == 1 ]]; then
        log "kept run directory: $RUN"
    else
        rm -rf "$RUN"
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

# ------------------------------------------------------ per-mode processes
# Set by start_mode for the current mode:
MODE="" MODE_DIR="" SCHEME="" CURL_TLS=()
UPSTREAM_PORT="" PROXY_PORT="" SIDECAR_PORT="" ADMIN_PORT=""
UPSTREAM_PID="" PROXY_PID="" SIDECAR_PID=""
declare -A PID_OF=() URL_OF=()
PATH_INFO=/api/v1/user/info

start_mode() { # start_mode MODE: upstream, then the nginx peer, then the sidecar
    MODE=$1
    MODE_DIR=$RUN/$MODE
    mkdir -p "$MODE_DIR"
    read -r UPSTREAM_PORT PROXY_PORT SIDECAR_PORT ADMIN_PORT < <(mkconfig ports 4)
    [[ -n ${ADMIN_PORT:-} ]] || die "could not pick free ports"
    local listen_flags=""
    if [[ $MODE == tls ]]; then
        SCHEME=https
        CURL_TLS=(--cacert "$RUN/certs/ca.pem")
        listen_flags="ssl http2"
    else
        SCHEME=http
        CURL_TLS=()
    fi
    URL_OF=([direct]="$SCHEME://127.0.0.1:$UPSTREAM_PORT$PATH_INFO"
        [nginx]="http://127.0.0.1:$PROXY_PORT$PATH_INFO"
        [sidecar]="http://127.0.0.1:$SIDECAR_PORT$PATH_INFO")

    mkdir -p "$MODE_DIR/upstream" "$MODE_DIR/proxy"
    if [[ $MODE == tls ]]; then
        render "$BENCH_DIR/nginx-upstream-tls.conf.tmpl" "$MODE_DIR/upstream/tls.conf" \
            "CERT_FILE=$RUN/certs/server.pem" "KEY_FILE=$RUN/certs/server.key"
        render "$BENCH_DIR/nginx-proxy-tls.conf.tmpl" "$MODE_DIR/proxy/upstream-tls.conf" \
            "CA_FILE=$RUN/certs/ca.pem"
    else
        echo "# plain HTTP: no TLS settings" >"$MODE_DIR/upstream/tls.conf"
        echo "# plain HTTP: no TLS settings" >"$MODE_DIR/proxy/upstream-tls.conf"
    fi

    start_nginx upstream "$BENCH_DIR/nginx-upstream.conf.tmpl" \
        "$SCHEME://127.0.0.1:$UPSTREAM_PORT/" "${CURL_TLS[@]}" -- \
        "UPSTREAM_PORT=$UPSTREAM_PORT" "LISTEN_FLAGS=$listen_flags" "TOKEN=$TOKEN" "REFRESH=$REFRESH"
    UPSTREAM_PID=$NGINX_PID
    PROXY_PID=""
    if has_target nginx; then
        start_nginx proxy "$BENCH_DIR/nginx-proxy.conf.tmpl" "http://127.0.0.1:$PROXY_PORT/" -- \
            "PROXY_PORT=$PROXY_PORT" "UPSTREAM_PORT=$UPSTREAM_PORT" "UPSTREAM_SCHEME=$SCHEME" \
            "TOKEN=$TOKEN" "NGINX_WORKERS=$NGINX_WORKERS" "NGINX_KEEPALIVE=$NGINX_KEEPALIVE"
        PROXY_PID=$NGINX_PID
    fi
    SIDECAR_PID=""
    has_target sidecar && start_sidecar
    PID_OF=([direct]="" [nginx]=$PROXY_PID [sidecar]=$SIDECAR_PID)
    printf 'case\tseq\ttarget\tstart_us\tcode\ttime_total\ttime_connect\ttime_appconnect\ttime_pretransfer\ttime_starttransfer\n' \
        >"$MODE_DIR/requests.tsv"
}

target_headers() { # prints curl/wrk header args, one per line
    if [[ $1 == direct ]]; then
        printf '%s\n' -H "Authorization: Bearer $TOKEN"
    fi
}

single_request() { # single_request CASE SEQ TARGET: one curl request on a fresh connection
    local case=$1 seq=$2 t=$3 hdr=() start out
    mapfile -t hdr < <(target_headers "$t")
    local tls=()
    [[ $t == direct ]] && tls=("${CURL_TLS[@]}")
    start=$(now_us)
    # HTTP/1.1 like a legacy client (curl would pick HTTP/2 for direct over TLS).
    # The probe header makes the upstream log the protocol it saw.
    out=$(curl -sS --http1.1 -o "$MODE_DIR/response-$t.json" --max-time 10 "${tls[@]}" "${hdr[@]}" \
        -H "X-Bench-Probe: $t" \
        -w '%{http_code}\t%{time_total}\t%{time_connect}\t%{time_appconnect}\t%{time_pretransfer}\t%{time_starttransfer}' \
        "${URL_OF[$t]}" 2>>"$MODE_DIR/curl-errors.log") || out=$'000\t0\t0\t0\t0\t0'
    printf '%s\t%s\t%s\t%s\t%s\n' "$case" "$seq" "$t" "$start" "$out" >>"$MODE_DIR/requests.tsv"
    printf '%s' "${out%%$'\t'*}"
}

sanity_checks() { # the upstream refuses a missing token; every target gets a 200
    local code t
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "${CURL_TLS[@]}" "${URL_OF[direct]}") || code=000
    [[ $code == 401 ]] || die "upstream without a token answered $code, expected 401"
    for t in "${TARGET_LIST[@]}"; do
        # The first request through each target after its start: timed (the
        # report shows it with the warm path).
        code=$(single_request first 0 "$t")
        if [[ $code != 200 ]] || ! grep -q user_bench "$MODE_DIR/response-$t.json"; then
            cat "$MODE_DIR/response-$t.json" "$MODE_DIR/curl-errors.log" >&2 2>/dev/null || true
            echo >&2
            [[ $t == sidecar ]] && tail -n 30 "$MODE_DIR/sidecar/stderr.log" >&2
            die "sanity check ($MODE): GET $PATH_INFO via $t answered $code, expected 200 from the upstream"
        fi
    done
    log "sanity checks passed ($MODE: ${TARGET_LIST[*]})"
}

# ------------------------------------------------------------ measurement
RUNS=$RUN/runs.tsv
printf 'mode\tkind\tround\tpos\ttarget\tconns\tthreads\trequests\tduration_us\tp50_us\tp90_us\tp99_us\tmax_us\tstatus\tconnect\tread\twrite\ttimeout\tproxy_ticks\tupstream_ticks\twrk_ticks\tmachine_total\tmachine_idle\tend_us\n' >"$RUNS"
mkdir -p "$RUN/wrk"

run_wrk() { # run_wrk KIND ROUND POS TARGET CONNS DURATION
    local kind=$1 round=$2 pos=$3 t=$4 c=$5 dur=$6
    local threads=$WRK_THREADS out line kv end
    if ((threads > c)); then threads=$c; fi
    out=$RUN/wrk/$MODE-$kind-r$round-$t-c$c.txt
    local hdr=()
    mapfile -t hdr < <(target_headers "$t")
    local p0 u0 w0 m0 p1 u1 w1 m1
    p0=$(group_ticks "${PID_OF[$t]}")
    u0=$(group_ticks "$UPSTREAM_PID")
    m0=$(machine_ticks)
    w0=$(child_ticks)
    wrk "-t$threads" "-c$c" "-d$dur" --latency -s "$BENCH_DIR/wrk-report.lua" "${hdr[@]}" \
        "${URL_OF[$t]}" >"$out" 2>&1 </dev/null &
    WRK_PID=$!
    if ! wait "$WRK_PID"; then
        WRK_PID=""
        cat "$out" >&2
        die "wrk failed ($MODE $kind round $round, $t, c=$c)"
    fi
    WRK_PID=""
    # wrk's CPU first: every later $(...) is a reaped child too
    w1=$(child_ticks)
    m1=$(machine_ticks)
    end=$(now_us)
    p1=$(group_ticks "${PID_OF[$t]}")
    u1=$(group_ticks "$UPSTREAM_PID")
    line=$(grep -m1 '^BENCH ' "$out") || { cat "$out" >&2; die "no BENCH line in wrk output ($out)"; }
    declare -A m=()
    local fields=()
    read -r -a fields <<<"${line#BENCH }"
    for kv in "${fields[@]}"; do m[${kv%%=*}]=${kv#*=}; done
    local mt0 mi0 mt1 mi1
    read -r mt0 mi0 <<<"$m0"
    read -r mt1 mi1 <<<"$m1"
    printf '%s\t' "$MODE" "$kind" "$round" "$pos" "$t" "$c" "$threads" "${m[requests]}" \
        "${m[duration_us]}" "${m[p50_us]}" "${m[p90_us]}" "${m[p99_us]}" "${m[max_us]}" \
        "${m[status]}" "${m[connect]}" "${m[read]}" "${m[write]}" "${m[timeout]}" \
        "$((p1 - p0))" "$((u1 - u0))" "$((w1 - w0))" "$((mt1 - mt0))" "$((mi1 - mi0))" >>"$RUNS"
    printf '%s\n' "$end" >>"$RUNS"
    log "$(report progress "$RUN")"
    if [[ -n ${PID_OF[$t]} ]] && ! alive "${PID_OF[$t]}"; then
        [[ $t == sidecar ]] && { echo "----- sidecar stderr -----" >&2; tail -n 50 "$MODE_DIR/sidecar/stderr.log" >&2; }
        die "FAIL: the $t process died during the run ($MODE)"
    fi
}

COSTS=$RUN/cost.tsv
printf 'mode\ttarget\ttool\trequests\tduration_us\tstatus\tsockerr\tctx_switches\tticks\tend_us\n' >"$COSTS"
cost_run() { # cost_run TARGET: one wrk -t1 -c1 run with perf stat (or strace) attached to the proxy
    local t=$1 pids=() tool="" events="" out line kv c0 c1 k0 k1 fields=()
    mapfile -t pids < <(pgrep -g "${PID_OF[$t]}")
    read -r tool events <<<"$(cost_tool "${pids[@]}")"
    if [[ -z $tool ]]; then
        [[ $COST == 1 || $COST_TOOL != auto ]] && die "COST=$COST COST_TOOL=$COST_TOOL: no counter can attach to $t (perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null))"
        log "WARNING: neither perf nor strace can attach to $t; no cost run"
        return 0
    fi
    mkdir -p "$RUN/cost"
    out=$RUN/cost/$MODE-$t
    c0=$(ctx_switches "${pids[@]}")
    k0=$(group_ticks "${PID_OF[$t]}")
    counter_start "$out" "$tool" "$events" -- "${pids[@]}" || die "$tool could not attach to $t ($(head -c 300 "$out.log"))"
    wrk -t1 -c1 "-d$COST_DURATION" --latency -s "$BENCH_DIR/wrk-report.lua" "${URL_OF[$t]}" \
        >"$out.wrk" 2>&1 </dev/null &
    WRK_PID=$!
    if ! wait "$WRK_PID"; then
        WRK_PID=""
        cat "$out.wrk" >&2
        die "wrk failed (cost run, $MODE, $t)"
    fi
    WRK_PID=""
    counter_stop
    c1=$(ctx_switches "${pids[@]}")
    k1=$(group_ticks "${PID_OF[$t]}")
    line=$(grep -m1 '^BENCH ' "$out.wrk") || { cat "$out.wrk" >&2; die "no BENCH line in $out.wrk"; }
    declare -A m=()
    read -r -a fields <<<"${line#BENCH }"
    for kv in "${fields[@]}"; do m[${kv%%=*}]=${kv#*=}; done
    {
        printf '%s\t' "$MODE" "$t" "$tool" "${m[requests]}" "${m[duration_us]}" "${m[status]}" \
            "$((m[connect] + m[read] + m[write] + m[timeout]))" "$((c1 - c0))" "$((k1 - k0))"
        printf '%s\n' "$(now_us)"
    } >>"$COSTS"
    log "cost ($MODE, $t, $tool): ${m[requests]} requests at -c1 in $COST_DURATION"
}

warm_path() { # one request per target every WARM_INTERVAL s, WARM_COUNT times
    local t0 i t code
    log "warm path ($MODE): $WARM_COUNT requests per target, one every ${WARM_INTERVAL}s (~$((WARM_COUNT * WARM_INTERVAL))s)"
    t0=$(now_us)
    for ((i = 1; i <= WARM_COUNT; i++)); do
        sleep_until_us $((t0 + i * WARM_INTERVAL * 1000000))
        for t in "${TARGET_LIST[@]}"; do
            code=$(single_request warm "$i" "$t")
            [[ $code == 200 ]] || log "WARNING: warm-path request $i via $t ($MODE) answered $code"
        done
        if [[ -n $SIDECAR_PID ]] && ! alive "$SIDECAR_PID"; then
            die "FAIL: the sidecar died during the warm path ($MODE)"
        fi
    done
}

run_mode() { # run_mode MODE: start, sanity, rounds, after-burst, warm path, stop
    start_mode "$1"
    sanity_checks
    local n_targets=${#TARGET_LIST[@]} last_conns=${CONN_LIST[-1]} r c i t
    local -A warmed=()
    log "settings ($MODE): DURATION=$DURATION ROUNDS=$ROUNDS CONNS=\"$CONNS\" TARGETS=\"$TARGETS\" NGINX_WORKERS=$NGINX_WORKERS WARMUP=$WARMUP"
    for ((r = 1; r <= ROUNDS; r++)); do
        for c in "${CONN_LIST[@]}"; do
            for ((i = 0; i < n_targets; i++)); do
                # rotate the order every round so slow drift cancels out
                t=${TARGET_LIST[(i + r - 1) % n_targets]}
                if [[ $WARMUP != 0 && -z ${warmed[$t/$c]:-} ]]; then
                    run_wrk warmup "$r" "$((i + 1))" "$t" "$c" "$WARMUP"
                    warmed[$t/$c]=1
                    sleep "$PAUSE"
                fi
                run_wrk measure "$r" "$((i + 1))" "$t" "$c" "$DURATION"
                # The sidecar's last run: its RSS is sampled from the moment
                # the load stops, while the other targets finish the round.
                if [[ $t == sidecar && $r == "$ROUNDS" && $c == "$last_conns" ]] && ((SETTLE_SECONDS > 0)); then
                    printf '%s\t%s\n' settle_after_conns "$c" >>"$MODE_DIR/memory.tsv"
                    start_sampler
                    log "sampling the sidecar's RSS for ${SETTLE_SECONDS}s ($MODE)"
                fi
                sleep "$PAUSE"
            done
        done
    done
    if [[ -n $SIDECAR_PID ]]; then
        printf '%s\t%s\n' peak_hwm_kb "$(status_kb "$SIDECAR_PID" VmHWM)" \
            end_rss_kb "$(status_kb "$SIDECAR_PID" VmRSS)" >>"$MODE_DIR/memory.tsv"
        if ! curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$ADMIN_PORT/readyz"; then
            log "WARNING: sidecar /readyz is not 200 after the runs ($MODE)"
        fi
    fi
    if [[ -n $SAMPLER_PID ]]; then
        log "waiting for the after-burst RSS samples ($MODE)"
        wait_sampler
    fi
    if ((COST_ON)); then
        for t in nginx sidecar; do
            if has_target "$t"; then cost_run "$t"; fi
        done
    fi
    if ((WARM)); then
        warm_path
    fi
    if [[ -n $SIDECAR_PID && -s $MODE_DIR/sidecar/stderr.log ]]; then
        log "the sidecar ($MODE) logged $(wc -l <"$MODE_DIR/sidecar/stderr.log") line(s) at warn or above; first 10:"
        head -n 10 "$MODE_DIR/sidecar/stderr.log" >&2
    fi
    stop_started
}

# ------------------------------------------------------------------- run
read -r TOKEN REFRESH < <(mkconfig tokens)
[[ -n ${REFRESH:-} ]] || die "could not generate the token"
[[ -n $SIDECAR_EXTRA_TOML ]] && printf '%s\n' "$SIDECAR_EXTRA_TOML" >"$RUN/extra.toml"
[[ " ${MODES[*]} " == *" tls "* ]] && make_certs "$RUN/certs"

# Is the machine idle? (Builds or other jobs on these few cores skew everything.)
read -r pt0 pi0 < <(machine_ticks)
sleep 1
read -r pt1 pi1 < <(machine_ticks)
PRE_BUSY=$(((pt1 - pt0) > 0 ? 100 * ((pt1 - pt0) - (pi1 - pi0)) / (pt1 - pt0) : 0))
if ((PRE_BUSY > OTHER_WARN)); then
    log "WARNING: the machine is ${PRE_BUSY}% busy before the benchmark starts; results will be skewed"
    ps -eo pid,pcpu,etime,comm --sort=-pcpu 2>/dev/null | head -n 6 >&2 || true
fi

# What the report says about the machine, tools and settings.
git_rev=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $git_rev != unknown && -n $(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    git_rev="$git_rev (uncommitted changes)"
fi
equiv="DURATION=$DURATION ROUNDS=$ROUNDS CONNS=\"$CONNS\" TARGETS=\"$TARGETS\" UPSTREAM=$UPSTREAM NGINX_WORKERS=$NGINX_WORKERS"
[[ $WARMUP != 2s ]] && equiv+=" WARMUP=$WARMUP"
[[ $NGINX_KEEPALIVE != 512 ]] && equiv+=" NGINX_KEEPALIVE=$NGINX_KEEPALIVE"
[[ $WRK_THREADS != 2 ]] && equiv+=" WRK_THREADS=$WRK_THREADS"
[[ $PAUSE != 1 ]] && equiv+=" PAUSE=$PAUSE"
[[ $SETTLE_SECONDS != 120 ]] && has_target sidecar && equiv+=" SETTLE_SECONDS=$SETTLE_SECONDS"
[[ $COST != auto ]] && equiv+=" COST=$COST"
[[ $COST_DURATION != 5s ]] && equiv+=" COST_DURATION=$COST_DURATION"
[[ $COST_TOOL != auto ]] && equiv+=" COST_TOOL=$COST_TOOL"
((WARM)) && equiv+=" WARM=1 WARM_INTERVAL=$WARM_INTERVAL WARM_COUNT=$WARM_COUNT"
[[ $OTHER_WARN != 15 ]] && equiv+=" OTHER_WARN=$OTHER_WARN"
[[ -n $SIDECAR_EXTRA_TOML ]] && has_target sidecar && equiv+=" SIDECAR_EXTRA_TOML=<below>"
if ((SIDECAR_BIN_SET)) && has_target sidecar; then equiv+=" SIDECAR_BIN=$(printf '%q' "$SIDECAR_BIN")"; fi
equiv+=" bench/run.sh"
((BUILD)) || equiv+=" --no-build"
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
[[ -n $cpu_model ]] || cpu_model=$(lscpu 2>/dev/null | awk -F': *' '/Model name/ { print $2; exit }' || true)
sidecar_version=""
has_target sidecar && sidecar_version=$(timeout 5 "$SIDECAR_BIN" --version 2>/dev/null </dev/null | head -n 1 || true)

: >"$RUN/meta.tsv"
meta date "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
meta command "$INVOCATION"
meta equivalent "$equiv"
meta nproc "$(nproc)"
meta cpu "${cpu_model:-unknown}"
meta mem "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
meta kernel "$(uname -r)"
meta nginx_version "$(nginx -v 2>&1 | head -n 1)"
meta nginx_openssl "$(nginx -V 2>&1 | sed -n 's/^built with //p' | head -n 1)"
meta wrk_version "$({ wrk -v 2>&1 || true; } | head -n 1 | sed 's/ Copyright.*//')"
meta git "$git_rev"
meta sidecar_version "$sidecar_version"
meta clk_tck "$(getconf CLK_TCK)"
meta pre_busy "$PRE_BUSY"
meta perf_event_paranoid "$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?')"
meta cost_on "$COST_ON"
for k in DURATION ROUNDS CONNS TARGETS UPSTREAM NGINX_WORKERS NGINX_KEEPALIVE WARMUP \
    WRK_THREADS PAUSE SETTLE_SECONDS WARM WARM_INTERVAL WARM_COUNT COST COST_DURATION COST_TOOL OTHER_WARN; do
    meta "${k,,}" "${!k}"
done

START_TS=$(date +%s)
for mode in "${MODES[@]}"; do
    run_mode "$mode"
done
meta elapsed "$(($(date +%s) - START_TS))"

# ------------------------------------------------------------------ report
report_rc=0
report report "$RUN" >"$RUN/report.md" || report_rc=$?
if [[ ! -s $RUN/report.md ]]; then
    die "report generation failed (python exit $report_rc); raw data: $RUN"
fi

echo
cat "$RUN/report.md"
echo
mkdir -p "$(dirname "$RESULTS_FILE")"
cp "$RUN/report.md" "$RESULTS_FILE"
log "report written to $RESULTS_FILE"

if ((report_rc == 3)); then
    echo >&2
    echo "########################################################################" >&2
    echo "## FAIL: the sidecar returned non-2xx responses, socket errors, or a  ##" >&2
    echo "## non-200 answer to a single request.                                ##" >&2
    echo "## See the Errors section above; every request must succeed.         ##" >&2
    echo "########################################################################" >&2
    exit 1
elif ((report_rc != 0)); then
    die "report generation failed (python exit $report_rc)"
fi
