# shellcheck shell=bash
# The process helpers of bench/run.sh, which sources this file: starting,
# watching and stopping nginx and the sidecar, reading /proc for CPU ticks,
# RSS and sockets, and rendering templates. Functions only; they read and set
# run.sh's globals (RUN, MODE, MODE_DIR, STARTED, SIDECAR_PID, the ports, ...)
# and use its log and die.

# --------------------------------------------- stopping what was started
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

stop_sampler() { # stops the after-burst RSS sampler if it is still running
    [[ -n $SAMPLER_PID ]] || return 0
    if [[ ! -e $SAMPLER_DONE ]] && alive "$SAMPLER_PID"; then
        pkill -TERM -P "$SAMPLER_PID" 2>/dev/null # its sleep
        kill -TERM "$SAMPLER_PID" 2>/dev/null
    fi
    SAMPLER_PID=""
}

stop_started() { # stops the current mode's processes, last started first
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        stop_proc "${STARTED[i]}" 10
    done
    STARTED=()
}

# ---------------------------------------------------- time, /proc, files
now_us() { printf '%s' "${EPOCHREALTIME//[.,]/}"; }

sleep_until_us() { # sleep_until_us EPOCH_MICROSECONDS
    local left=$(($1 - $(now_us)))
    ((left > 0)) || return 0
    sleep "$((left / 1000000)).$(printf '%06d' $((left % 1000000)))"
}

status_kb() { # status_kb PID FIELD -> value in kB from /proc/PID/status (no fork)
    local key value _unit
    while read -r key value _unit; do
        if [[ $key == "$2:" ]]; then
            printf '%s' "$value"
            return 0
        fi
    done <"/proc/$1/status"
    return 1
}

socket_count() { # open sockets of PID
    find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null | wc -l
}

meta() { # meta KEY VALUE: one line of the run's meta.tsv (tabs and newlines flattened)
    local value=${2//$'\t'/ }
    printf '%s\t%s\n' "$1" "${value//$'\n'/ }" >>"$RUN/meta.tsv"
}

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

make_certs() { # make_certs DIR: a CA and a server certificate for 127.0.0.1 and localhost
    local d=$1
    mkdir -p "$d"
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$d/ca.key" -out "$d/ca.pem" -days 2 -subj "/CN=ethgas-bench CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>"$d/openssl.log" ||
        { cat "$d/openssl.log" >&2; die "openssl: could not create the CA"; }
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=localhost" 2>>"$d/openssl.log" ||
        { cat "$d/openssl.log" >&2; die "openssl: could not create the server key"; }
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
        "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$d/server.ext" \
        -out "$d/server.pem" 2>>"$d/openssl.log" ||
        { cat "$d/openssl.log" >&2; die "openssl: could not sign the server certificate"; }
    chmod 0644 "$d/ca.pem" "$d/server.pem"
}

# -------------------------------------- starting the processes of a mode
wait_http() { # wait_http PID URL NAME LOGFILE [curl args...]
    local pid=$1 url=$2 name=$3 logf=$4 i
    shift 4
    for ((i = 0; i < 100; i++)); do
        if ! alive "$pid"; then
            tail -n 30 "$logf" >&2 || true
            die "$name exited during startup"
        fi
        if curl -s -o /dev/null --max-time 1 "$@" "$url"; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 30 "$logf" >&2 || true
    die "$name did not answer on $url within 10s"
}

start_nginx() { # start_nginx NAME TEMPLATE URL [curl args...] -- KEY=VALUE...  -> sets NGINX_PID
    local name=$1 tmpl=$2 url=$3 prefix=$MODE_DIR/$1 curl_args=()
    shift 3
    while (($# > 0)) && [[ $1 != -- ]]; do curl_args+=("$1"); shift; done
    shift
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
    wait_http "$NGINX_PID" "$url" "nginx $name ($MODE)" "$prefix/logs/error.log" "${curl_args[@]}"
    log "nginx $name ($MODE): pid $NGINX_PID, $url"
}

start_sidecar() {
    local d=$MODE_DIR/sidecar ready=0 deadline args=()
    mkdir -p "$d"
    printf 'bench-password\n' >"$d/password"
    chmod 0600 "$d/password"
    args=(--listen "127.0.0.1:$SIDECAR_PORT" --admin "127.0.0.1:$ADMIN_PORT"
        --base-url "$SCHEME://127.0.0.1:$UPSTREAM_PORT" --password-file "$d/password")
    [[ $MODE == tls ]] && args+=(--ca-file "$RUN/certs/ca.pem")
    [[ -n $SIDECAR_EXTRA_TOML ]] && args+=(--extra "$RUN/extra.toml")
    mkconfig sidecar "${args[@]}" >"$d/config.toml" ||
        die "could not write the sidecar config (SIDECAR_EXTRA_TOML?)"
    # shellcheck disable=SC2153 # SIDECAR_BIN is run.sh's
    setsid "$SIDECAR_BIN" run --config "$d/config.toml" \
        >"$d/stdout.log" 2>"$d/stderr.log" </dev/null &
    SIDECAR_PID=$!
    STARTED+=("$SIDECAR_PID")
    deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)); do
        if ! alive "$SIDECAR_PID"; then
            echo "----- sidecar stderr -----" >&2
            cat "$d/stderr.log" >&2 || true
            die "the sidecar exited during startup (config: $d/config.toml)"
        fi
        if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null; then
            ready=1
            break
        fi
        sleep 0.1
    done
    if ((!ready)); then
        echo "----- sidecar stderr -----" >&2
        cat "$d/stderr.log" >&2 || true
        echo "----- /readyz -----" >&2
        curl -sS --max-time 1 "http://127.0.0.1:$ADMIN_PORT/readyz" >&2 || true
        die "the sidecar was not ready (GET /readyz != 200) within 20s"
    fi
    local rss sockets
    rss=$(status_kb "$SIDECAR_PID" VmRSS)
    sockets=$(socket_count "$SIDECAR_PID")
    printf '%s\t%s\n' idle_rss_kb "$rss" idle_sockets "$sockets" >>"$MODE_DIR/memory.tsv"
    log "sidecar ($MODE): pid $SIDECAR_PID on 127.0.0.1:$SIDECAR_PORT (admin $ADMIN_PORT), idle RSS $rss kB"
}

# -------------------------------------------------------- cpu and memory
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

sample_rss() { # sample_rss PID SECONDS OUT: VmRSS and open sockets once a second
    local pid=$1 n=$2 out=$3 t0 i rss
    t0=$(now_us)
    printf 't_us\trss_kb\tsockets\n' >"$out"
    for ((i = 0; i <= n; i++)); do
        sleep_until_us $((t0 + i * 1000000))
        rss=$(status_kb "$pid" VmRSS 2>/dev/null) || break
        printf '%s\t%s\t%s\n' "$(($(now_us) - t0))" "$rss" "$(socket_count "$pid")" >>"$out"
    done
}

start_sampler() { # samples the sidecar's RSS for SETTLE_SECONDS, in the background
    SAMPLER_DONE=$MODE_DIR/settle.done
    # Started from a subshell that exits at once, so the sampler is not this
    # shell's child: when it ends, its CPU does not land in this shell's
    # cutime, which is how wrk's CPU is measured.
    (
        { sample_rss "$SIDECAR_PID" "$SETTLE_SECONDS" "$MODE_DIR/settle.tsv"; : >"$SAMPLER_DONE"; } </dev/null &
        echo $! >"$MODE_DIR/sampler.pid"
    )
    SAMPLER_PID=$(<"$MODE_DIR/sampler.pid")
}

wait_sampler() { # bounded: the sampler stops by itself after SETTLE_SECONDS
    local deadline=$((SECONDS + SETTLE_SECONDS + 10))
    while [[ ! -e $SAMPLER_DONE ]] && alive "$SAMPLER_PID" && ((SECONDS < deadline)); do
        sleep 0.5
    done
    stop_sampler
}

# ------------------------------------ per-request system cost (COST, at -c1)
# One counter at a time is attached to a proxy's processes (nginx: master and
# workers; the sidecar: every thread) for exactly one wrk run: perf stat,
# started disabled and switched on and off through its control FIFOs, or, when
# perf cannot attach, strace -c (which stops the process at every system call,
# so only its call count is used).
COST_EVENTS=raw_syscalls:sys_enter,context-switches,cpu-migrations,task-clock
COUNTER_PID="" COUNTER_TOOL="" COUNTER_CTL="" COUNTER_ACK=""

cost_tool() { # cost_tool PID...: prints "perf EVENTS" or "strace" or nothing
    local pids events
    pids=$(IFS=,; printf '%s' "$*")
    if [[ $COST_TOOL != strace ]] && command -v perf >/dev/null 2>&1; then
        for events in "$COST_EVENTS,sched:sched_waking" "$COST_EVENTS"; do
            if timeout 10 perf stat -x, -o /dev/null -e "$events" -p "$pids" -- true >/dev/null 2>&1; then
                printf 'perf %s' "$events"
                return 0
            fi
        done
    fi
    if [[ $COST_TOOL != perf ]] && command -v strace >/dev/null 2>&1; then
        printf 'strace'
    fi
}

ctx_switches() { # ctx_switches PID...: voluntary + involuntary switches of all their threads
    local total=0 f key value
    for f in $(printf '/proc/%s/task/*/status ' "$@"); do
        while read -r key value; do
            case $key in
                voluntary_ctxt_switches: | nonvoluntary_ctxt_switches:) total=$((total + value)) ;;
            esac
        done <"$f" 2>/dev/null || true
    done
    echo "$total"
}

all_traced() { # all_traced PID...: true when every thread has a tracer
    local f key value
    for f in $(printf '/proc/%s/task/*/status ' "$@"); do
        while read -r key value; do
            [[ $key == TracerPid: ]] || continue
            [[ $value != 0 ]] || return 1
            break
        done <"$f"
    done
}

counter_start() { # counter_start OUT TOOL [EVENTS] -- PID...: counting when it returns 0
    local out=$1 tool=$2 events=${3:-} i a=""
    shift 3
    [[ ${1:-} == -- ]] && shift
    COUNTER_TOOL=$tool
    if [[ $tool == perf ]]; then
        mkfifo "$out.ctl" "$out.ack"
        # read-write opens of a FIFO do not block, whether perf opens its ends or not
        exec {COUNTER_CTL}<>"$out.ctl" {COUNTER_ACK}<>"$out.ack"
        perf stat -x, -o "$out.perf" -e "$events" -p "$(IFS=,; printf '%s' "$*")" -D -1 \
            --control "fifo:$out.ctl,$out.ack" >"$out.log" 2>&1 </dev/null &
        COUNTER_PID=$!
        echo enable >&"$COUNTER_CTL"
        for ((i = 0; i < 100; i++)); do
            if read -r -t 0.1 a <&"$COUNTER_ACK" && [[ $a == ack ]]; then return 0; fi
            alive "$COUNTER_PID" || break
        done
    else
        local p=()
        for i in "$@"; do p+=(-p "$i"); done
        strace -c -f -q -o "$out.strace" "${p[@]}" >"$out.log" 2>&1 </dev/null &
        COUNTER_PID=$!
        for ((i = 0; i < 100; i++)); do
            all_traced "$@" && return 0
            alive "$COUNTER_PID" || break
            sleep 0.1
        done
    fi
    counter_stop
    return 1
}

counter_stop() { # stops counting and waits until the counter has written its file
    local a="" i
    [[ -n $COUNTER_PID ]] || return 0
    if [[ $COUNTER_TOOL == perf ]]; then
        if [[ -n $COUNTER_CTL ]] && alive "$COUNTER_PID"; then
            { echo disable >&"$COUNTER_CTL"; } 2>/dev/null || true
            read -r -t 10 a <&"$COUNTER_ACK" || true
        fi
    fi
    kill -INT "$COUNTER_PID" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$COUNTER_PID" || break; sleep 0.1; done
    kill -KILL "$COUNTER_PID" 2>/dev/null || true
    wait "$COUNTER_PID" 2>/dev/null || true
    if [[ -n $COUNTER_CTL ]]; then exec {COUNTER_CTL}>&- {COUNTER_ACK}>&-; fi
    COUNTER_PID="" COUNTER_CTL="" COUNTER_ACK=""
}
