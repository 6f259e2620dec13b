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
import os, re, socket, statistics, subprocess, sys, tempfile, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wrk(port, conns, duration):
    out = subprocess.run(
        ["wrk", "-t2" if conns > 1 else "-t1", f"-c{conns}", f"-d{duration}", "--latency",
         "-s", f"{HERE}/wrk-report.lua", f"http://127.0.0.1:{port}/api/v1/user/info"],
        capture_output=True, text=True).stdout
    return dict(kv.split("=") for kv in re.search(r"^BENCH (.*)$", out, re.M).group(1).split())


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
    up = f"{rundir}/{mode}/upstream"
    subprocess.run(["nginx", "-s", "stop", "-p", up + "/", "-c", up + "/nginx.conf"], stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    procs = [subprocess.Popen(["nginx", "-p", up + "/", "-c", up + "/nginx.conf", "-e", up + "/logs/error.log"])]
    base_cfg = open(f"{rundir}/{mode}/sidecar/config.toml").read()
    started = []
    try:
        for name, binary in variants:
            port, admin = free_port(), free_port()
            cfg = re.sub(r'(\[proxy\]\nlisten = )"[^"]*"', f'\\1"127.0.0.1:{port}"', base_cfg)
            cfg = re.sub(r'(\[admin\]\nlisten = )"[^"]*"', f'\\1"127.0.0.1:{admin}"', cfg)
            extra = os.environ.get("EXTRA_" + name.upper(), "")
            if extra:
                # A key the run's config already sets is replaced, not repeated.
                for line in extra.splitlines():
                    key = line.split("=", 1)[0].strip()
                    cfg = re.sub(rf"(?m)^{re.escape(key)} = .*\n", "", cfg)
                cfg = cfg.replace("[upstream]\n", "[upstream]\n" + extra + "\n", 1)
            path = f"{work}/{name}.toml"
            open(path, "w").write(cfg)
            pr = subprocess.Popen([binary, "run", "--config", path], stdout=subprocess.DEVNULL,
                                  stderr=open(f"{work}/{name}.err", "w"))
            procs.append(pr)
            started.append((name, pr, port, admin))
        for name, pr, port, admin in started:
            for _ in range(100):
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1).status == 200:
                        break
                except Exception:
                    pass
                time.sleep(0.1)
            else:
                sys.exit(f"{name} never became ready: see {work}/{name}.err")
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
