#!/usr/bin/env python3
"""The floor of an extra hop at one connection: direct, two byte relays that
parse nothing (haproxy `mode tcp`, socat), nginx proxying as bench/run.sh
sets it up, and the sidecar, taking turns round after round (`wrk -t1 -c1`),
against the upstream nginx of a kept bench run (`KEEP_TMP=1 bench/run.sh`).
What a relay adds is what the loopback hop and two wake-ups cost on this
machine, before any HTTP work; issue 20's goals are read against it.

    bench/floor.py RUNDIR ROUNDS DURATION SIDECAR_BINARY [plain|tls]

In tls mode the relays wrap the stream in TLS to the API (haproxy `ssl`,
socat OPENSSL:), direct is wrk over https://. Needs haproxy and socat
(`apt-get install haproxy socat`). Prints, per target, the medians over
rounds of req/s, p50 (and what it adds over direct) and p99.
"""
import os, re, statistics, subprocess, sys, tempfile

from kept_run import HERE, free_port, sidecar_config, start_upstream, wait_ready, wrk


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    rundir, rounds, duration, sidecar = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    mode = sys.argv[5] if len(sys.argv) > 5 else "plain"
    tls = mode == "tls"
    work = tempfile.mkdtemp(prefix="ethgas-floor.")
    os.makedirs(work + "/logs")
    os.makedirs(work + "/tmp")
    upstream, conf = start_upstream(rundir, mode)
    uport = int(re.search(r"listen 127\.0\.0\.1:(\d+)", conf).group(1))
    token = re.search(r'Bearer (ey[^"]+)"', conf).group(1)
    procs = [upstream]
    # target: (port, token the client sends itself or None, scheme)
    targets = {"direct": (uport, token, "https" if tls else "http")}
    try:
        nginx_port = free_port()
        t = open(f"{HERE}/nginx-proxy.conf.tmpl").read()
        for k, v in {"NGINX_WORKERS": "auto", "PREFIX": work, "UPSTREAM_PORT": str(uport),
                     "NGINX_KEEPALIVE": "64", "PROXY_PORT": str(nginx_port),
                     "UPSTREAM_SCHEME": "https" if tls else "http", "TOKEN": token}.items():
            t = t.replace(f"@@{k}@@", v)
        open(work + "/upstream-tls.conf", "w").write(
            open(f"{rundir}/{mode}/proxy/upstream-tls.conf").read() if tls else "")
        open(work + "/nginx.conf", "w").write(t)
        procs.append(subprocess.Popen(["nginx", "-p", work + "/", "-c", work + "/nginx.conf",
                                       "-e", work + "/logs/error.log"]))
        targets["nginx"] = (nginx_port, None, "http")
        haproxy_port = free_port()
        open(work + "/haproxy.cfg", "w").write(
            "global\n  nbthread 2\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n"
            f"  timeout server 60s\nlisten relay\n  bind 127.0.0.1:{haproxy_port}\n"
            f"  server up 127.0.0.1:{uport}{' ssl verify none' if tls else ''}\n")
        procs.append(subprocess.Popen(["haproxy", "-f", work + "/haproxy.cfg", "-db"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        targets["haproxy-tcp"] = (haproxy_port, token, "http")
        socat_port = free_port()
        procs.append(subprocess.Popen(
            ["socat", f"TCP-LISTEN:{socat_port},bind=127.0.0.1,reuseaddr,fork",
             f"OPENSSL:127.0.0.1:{uport},verify=0" if tls else f"TCP:127.0.0.1:{uport}"]))
        targets["socat"] = (socat_port, token, "http")
        port, admin = free_port(), free_port()
        open(work + "/sidecar.toml", "w").write(sidecar_config(rundir, mode, port, admin))
        procs.append(subprocess.Popen([sidecar, "run", "--config", work + "/sidecar.toml"],
                                      stdout=subprocess.DEVNULL, stderr=open(work + "/sidecar.err", "w")))
        targets["sidecar"] = (port, None, "http")
        wait_ready(admin, "the sidecar", work + "/sidecar.err")
        res = {name: [] for name in targets}
        for name, (p, auth, scheme) in targets.items():
            wrk(p, 1, "2s", scheme, auth)  # warm-up
        order = list(targets.items())
        for r in range(rounds):
            for name, (p, auth, scheme) in (order if r % 2 == 0 else order[::-1]):
                m = wrk(p, 1, duration, scheme, auth)
                res[name].append((int(m["requests"]) / (int(m["duration_us"]) / 1e6),
                                  float(m["p50_us"]), float(m["p99_us"]), int(m["status"])))
    finally:
        for pr in procs:
            pr.terminate()
        for pr in procs:
            pr.wait()
    print(f"{mode} upstream, wrk -t1 -c1, {rounds} interleaved rounds x {duration}; medians")
    direct = statistics.median(x[1] for x in res["direct"])
    for name, rows in res.items():
        med = lambda i: statistics.median(x[i] for x in rows)
        print(f"  {name:12s} req/s {med(0):8.0f}  p50 {med(1):6.1f} us (added {med(1) - direct:+5.1f})  "
              f"p99 {med(2):6.1f} us  non-2xx {sum(x[3] for x in rows)}")
        print("               p50s", [x[1] for x in rows])


if __name__ == "__main__":
    main()
