#!/usr/bin/env python3
"""Interleaved A/B of sidecar builds or settings against the upstream nginx of
a kept bench run (`KEEP_TMP=1 bench/run.sh`), the way the optimisation log in
bench/README.md measures changes too small for two separate runs: the
variants take turns, round after round, so a machine that speeds up or slows
down during the run weighs on all of them alike.

    bench/ab.py RUNDIR plain|tls ROUNDS DURATION NAME=BINARY [NAME=BINARY ...]

Environment: C (connections, default 1: `wrk -t1 -c1`, one request at a
time), EXTRA_<NAME> (TOML lines added to that variant's [upstream] table,
e.g. EXTRA_H1="http2 = false"; a key the run's config already sets is
replaced). Prints, per variant, the medians over rounds
of req/s, p50, p99 and the sidecar's CPU µs per request (/proc/PID/stat),
and each round's p50 and CPU so the spread shows.

Example (issue 20's upstream.http2 A/B, one binary, two settings):
    EXTRA_H1="http2 = false" bench/ab.py /tmp/ethgas-bench.XXXX tls 10 4s \\
        h2=target/release/ethgas-sidecar h1=target/release/ethgas-sidecar
"""
import os, statistics, subprocess, sys, tempfile

from kept_run import free_port, sidecar_config, start_upstream, wait_ready, wrk


def ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    rundir, mode, rounds, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    variants = [a.split("=", 1) for a in sys.argv[5:]]
    conns = int(os.environ.get("C", "1"))
    work = tempfile.mkdtemp(prefix="ethgas-ab.")
    upstream, _ = start_upstream(rundir, mode)
    procs = [upstream]
    started = []
    try:
        for name, binary in variants:
            port, admin = free_port(), free_port()
            path = f"{work}/{name}.toml"
            open(path, "w").write(sidecar_config(rundir, mode, port, admin, os.environ.get("EXTRA_" + name.upper(), "")))
            pr = subprocess.Popen([binary, "run", "--config", path], stdout=subprocess.DEVNULL,
                                  stderr=open(f"{work}/{name}.err", "w"))
            procs.append(pr)
            started.append((name, pr, port, admin))
        for name, pr, port, admin in started:
            wait_ready(admin, name, f"{work}/{name}.err")
        hz = os.sysconf("SC_CLK_TCK")
        res = {name: [] for name, *_ in started}
        for name, pr, port, admin in started:
            wrk(port, conns, "2s")  # warm-up
        for r in range(rounds):
            for name, pr, port, admin in (started if r % 2 == 0 else started[::-1]):
                t0 = ticks(pr.pid)
                m = wrk(port, conns, duration)
                t1 = ticks(pr.pid)
                req = int(m["requests"])
                secs = int(m["duration_us"]) / 1e6
                res[name].append((req / secs, float(m["p50_us"]), float(m["p99_us"]),
                                  (t1 - t0) / hz * 1e6 / req, int(m["status"])))
    finally:
        for pr in procs:
            pr.terminate()
        for pr in procs:
            pr.wait()
    print(f"{mode} upstream, {conns} connection(s), {rounds} interleaved rounds x {duration}; medians")
    for name, rows in res.items():
        med = lambda i: statistics.median(x[i] for x in rows)
        print(f"  {name:8s} req/s {med(0):9.0f}  p50 {med(1):7.1f} us  p99 {med(2):7.1f} us  "
              f"cpu {med(3):5.1f} us/req  non-2xx {sum(x[4] for x in rows)}")
        print("           p50s", [x[1] for x in rows], "cpu", [round(x[3], 1) for x in rows])


if __name__ == "__main__":
    main()
