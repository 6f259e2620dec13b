"""What bench/ab.py and bench/floor.py share: the upstream nginx and the
sidecar config of a run directory kept by `KEEP_TMP=1 bench/run.sh`, free
loopback ports, readiness, and one wrk run read through wrk-report.lua."""
import os, re, socket, subprocess, sys, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_upstream(rundir, mode):
    """(re)starts the run's upstream nginx; returns its process and its config text."""
    up = f"{rundir}/{mode}/upstream"
    subprocess.run(["nginx", "-s", "stop", "-p", up + "/", "-c", up + "/nginx.conf"], stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    proc = subprocess.Popen(["nginx", "-p", up + "/", "-c", up + "/nginx.conf", "-e", up + "/logs/error.log"])
    return proc, open(up + "/nginx.conf").read()


def sidecar_config(rundir, mode, port, admin, upstream_extra=""):
    """The run's sidecar config on new ports; `upstream_extra` lines go into
    [upstream], replacing a key the config already sets."""
    cfg = open(f"{rundir}/{mode}/sidecar/config.toml").read()
    cfg = re.sub(r'(\[proxy\]\nlisten = )"[^"]*"', f'\\1"127.0.0.1:{port}"', cfg)
    cfg = re.sub(r'(\[admin\]\nlisten = )"[^"]*"', f'\\1"127.0.0.1:{admin}"', cfg)
    if upstream_extra:
        for line in upstream_extra.splitlines():
            key = line.split("=", 1)[0].strip()
            cfg = re.sub(rf"(?m)^{re.escape(key)} = .*\n", "", cfg)
        cfg = cfg.replace("[upstream]\n", "[upstream]\n" + upstream_extra + "\n", 1)
    return cfg


def wait_ready(admin, name, err_path):
    for _ in range(100):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1).status == 200:
                return
        except Exception:
            pass
        time.sleep(0.1)
    sys.exit(f"{name} never became ready: see {err_path}")


def wrk(port, conns, duration, scheme="http", token=None):
    """One wrk run on /api/v1/user/info; the BENCH line as a dict."""
    header = ["-H", f"Authorization: Bearer {token}"] if token else []
    out = subprocess.run(
        ["wrk", "-t2" if conns > 1 else "-t1", f"-c{conns}", f"-d{duration}", "--latency",
         "-s", f"{HERE}/wrk-report.lua", *header, f"{scheme}://127.0.0.1:{port}/api/v1/user/info"],
        capture_output=True, text=True).stdout
    return dict(kv.split("=") for kv in re.search(r"^BENCH (.*)$", out, re.M).group(1).split())
