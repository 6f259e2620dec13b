#!/usr/bin/env python3
"""The benchmark report: reads the run directory that bench/run.sh filled and
prints the markdown that run.sh saves as bench/RESULTS.md.

    report.py report RUN_DIR      the report on stdout; exit 3 when the
                                  sidecar failed a request, 0 otherwise
    report.py progress RUN_DIR    one line about the last wrk run (run.sh's log)

The run directory (kept with KEEP_TMP=1, so a report can be made again):

    meta.tsv            key<TAB>value: date, command, machine, tools, settings
    runs.tsv            one row per wrk run (warm-ups included): its BENCH
                        line (wrk-report.lua), the CPU ticks of the proxy,
                        the upstream and wrk, the machine's ticks, end time
    wrk/                wrk's raw output, one file per run
    extra.toml          SIDECAR_EXTRA_TOML, when given
    certs/              the run's CA and the upstream's certificate (HTTPS)
    cost.tsv            one row per cost run (COST): wrk -t1 -c1 through a
                        proxy with a counter attached: requests, errors,
                        the proxy's context switches and CPU ticks (/proc)
    cost/MODE-TARGET.*  that run's raw output: .wrk, and .perf (perf stat -x,)
                        or .strace (strace -c)
    MODE/memory.tsv     the sidecar's idle RSS and sockets, peak and end RSS,
                        the concurrency after which the RSS was sampled
    MODE/settle.tsv     the sidecar's RSS and open sockets once a second
                        after its last run (SETTLE_SECONDS)
    MODE/requests.tsv   single curl requests: the first through each target
                        after its start, and the warm path (WARM=1)
    MODE/upstream/logs/probe.log
                        the protocol the upstream saw for those requests
    MODE/{upstream,proxy,sidecar}/
                        each process's config and logs

MODE is `plain` or `tls`. Only the standard library is used.
"""

from __future__ import annotations

import csv
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TARGET_ORDER = ("direct", "nginx", "sidecar")
# The order of the mode sections: HTTPS, what users run, first.
MODE_ORDER = ("tls", "plain")
MODE_TITLE = {
    "tls": "HTTPS upstream (UPSTREAM=tls)",
    "plain": "Plain HTTP upstream (UPSTREAM=plain)",
}
MODE_SHORT = {"tls": "HTTPS", "plain": "plain HTTP"}
MODE_ABOUT = {
    "tls": (
        "the upstream nginx serves HTTPS (TLS 1.2/1.3, an ECDSA P-256 certificate from a CA "
        "generated for the run) and offers HTTP/2 by ALPN. The nginx peer verifies it "
        "(`proxy_ssl_verify on`, `proxy_ssl_trusted_certificate`, `proxy_ssl_server_name on`, "
        "`proxy_ssl_session_reuse on`) and pools HTTP/1.1 connections (`keepalive` per worker); "
        "the sidecar trusts the CA through `upstream.ca_file`; direct is wrk over TLS (HTTP/1.1)."
    ),
    "plain": "the upstream nginx serves plain HTTP/1.1 on loopback; the nginx peer and the sidecar pool keep-alive connections to it.",
}
# The ratio columns of the throughput table: name, numerator, denominator, value.
RATIOS = (
    ("sidecar/nginx req/s", "sidecar", "nginx", "rps"),
    ("sidecar/nginx p50", "sidecar", "nginx", "p50_us"),
    ("sidecar/direct req/s", "sidecar", "direct", "rps"),
    ("nginx/direct req/s", "nginx", "direct", "rps"),
)
# A run's RSS is "back" when it is within this much of the idle RSS.
SETTLE_GOAL_KB = 4 * 1024
SETTLE_MARKS_S = (30, 60, 120)
WARM_GOAL_RATIO = 2.0
# Issue 20's goal at one connection: the sidecar adds at most this share of
# what nginx adds to a direct connection's p50, at no fewer requests/s.
ADDED_GOAL_RATIO = 0.8

Lines = list[str]


# ----------------------------------------------------------------- loading
def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def read_pairs(path: Path) -> dict[str, str]:
    """key<TAB>value lines; a later line wins."""
    pairs: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("\t")
            if key:
                pairs[key] = value
    return pairs


@dataclass
class Run:
    """One wrk run and the CPU the processes used during it."""

    mode: str
    kind: str  # "warmup" or "measure"
    round: int
    pos: int
    target: str
    conns: int
    requests: int
    duration_us: int
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float
    status: int  # non-2xx responses
    connect: int
    read: int
    write: int
    timeout: int
    proxy_ticks: int
    upstream_ticks: int
    wrk_ticks: int
    machine_total: int
    machine_idle: int
    end_us: int
    tick_us: float

    @classmethod
    def from_row(cls, row: dict[str, str], tick_us: float) -> Run:
        ints = [
            "round",
            "pos",
            "conns",
            "requests",
            "duration_us",
            "status",
            "connect",
            "read",
            "write",
            "timeout",
            "proxy_ticks",
            "upstream_ticks",
            "wrk_ticks",
            "machine_total",
            "machine_idle",
            "end_us",
        ]
        floats = ["p50_us", "p90_us", "p99_us", "max_us"]
        numbers: dict[str, float] = {k: int(row[k]) for k in ints}
        numbers.update({k: float(row[k]) for k in floats})
        return cls(mode=row.get("mode", "plain"), kind=row["kind"], target=row["target"], tick_us=tick_us, **numbers)

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    @property
    def sockerr(self) -> int:
        return self.connect + self.read + self.write + self.timeout

    def _per_request(self, ticks: int) -> float:
        return ticks * self.tick_us / max(self.requests, 1)

    @property
    def proxy_us_req(self) -> float | None:
        return None if self.target == "direct" else self._per_request(self.proxy_ticks)

    @property
    def upstream_us_req(self) -> float:
        return self._per_request(self.upstream_ticks)

    @property
    def wrk_us_req(self) -> float:
        return self._per_request(self.wrk_ticks)

    @property
    def busy(self) -> float:
        t = self.machine_total
        return 100.0 * (t - self.machine_idle) / t if t else 0.0

    @property
    def other(self) -> float:
        """Busy time not accounted to wrk, the upstream or the proxy, in %."""
        t = self.machine_total
        if not t:
            return 0.0
        own = self.proxy_ticks + self.upstream_ticks + self.wrk_ticks
        return max(0.0, 100.0 * (t - self.machine_idle - own) / t)


@dataclass
class Cost:
    """One cost run: wrk -t1 -c1 through a proxy, with perf stat (or strace -c)
    attached to all its processes and threads. Totals; per request below."""

    mode: str
    target: str
    tool: str  # "perf" or "strace"
    requests: int
    duration_us: int
    status: int
    sockerr: int
    end_us: int
    syscalls: float | None
    ctx_switches: float | None
    migrations: float | None
    wakeups: float | None
    cpu_us: float | None

    @classmethod
    def load(cls, run_dir: Path, row: dict[str, str], tick_us: float) -> Cost:
        base = run_dir / "cost" / f"{row['mode']}-{row['target']}"
        counts: dict[str, float | None] = {}
        if row["tool"] == "perf":
            counts = parse_perf(base.with_name(base.name + ".perf"))
            ctx, cpu = counts.get("context-switches"), counts.get("task-clock")
        else:
            counts = {"raw_syscalls:sys_enter": parse_strace(base.with_name(base.name + ".strace"))}
            # strace stops the process at every system call: these are inflated
            ctx, cpu = float(row["ctx_switches"]), int(row["ticks"]) * tick_us
        return cls(
            mode=row["mode"],
            target=row["target"],
            tool=row["tool"],
            requests=int(row["requests"]),
            duration_us=int(row["duration_us"]),
            status=int(row["status"]),
            sockerr=int(row["sockerr"]),
            end_us=int(row["end_us"]),
            syscalls=counts.get("raw_syscalls:sys_enter"),
            ctx_switches=ctx,
            migrations=counts.get("cpu-migrations"),
            wakeups=counts.get("sched:sched_waking"),
            cpu_us=cpu,
        )

    def per_request(self, total: float | None) -> float | None:
        return None if total is None or not self.requests else total / self.requests

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0


def parse_perf(path: Path) -> dict[str, float | None]:
    """perf stat -x, output: value,unit,event,...; task-clock in µs."""
    counts: dict[str, float | None] = {}
    if not path.exists():
        return counts
    for line in path.read_text().splitlines():
        fields = line.split(",")
        if line.startswith("#") or len(fields) < 3:
            continue
        value, unit, event = fields[0], fields[1], fields[2]
        try:
            v: float | None = float(value)
        except ValueError:  # <not counted>, <not supported>
            v = None
        if v is not None and unit == "msec":
            v *= 1000.0
        counts[event] = v
    return counts


def parse_strace(path: Path) -> float | None:
    """The calls column of strace -c's "total" line."""
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and fields[-1] == "total" and len(fields) >= 4:
            try:
                return float(fields[3])
            except ValueError:
                return None
    return None


@dataclass
class Request:
    """One curl request on a fresh connection (the first after start, or the warm path)."""

    case: str  # "first" or "warm"
    seq: int
    target: str
    start_us: int
    code: str
    time_total: float
    time_pretransfer: float

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Request:
        return cls(
            case=row["case"],
            seq=int(row["seq"]),
            target=row["target"],
            start_us=int(row["start_us"]),
            code=row["code"],
            time_total=float(row["time_total"]),
            time_pretransfer=float(row["time_pretransfer"]),
        )

    @property
    def ok(self) -> bool:
        return self.code == "200"

    @property
    def latency_us(self) -> float:
        """From the request ready to send until the response ended: the span
        wrk's latency covers (the client's own connect excluded)."""
        return (self.time_total - self.time_pretransfer) * 1e6

    @property
    def total_us(self) -> float:
        return self.time_total * 1e6


@dataclass
class Mode:
    """Everything measured with one kind of upstream."""

    name: str
    runs: list[Run]
    memory: dict[str, str]
    settle: list[tuple[float, int, int]]  # seconds after the load stopped, RSS kB, sockets
    requests: list[Request]
    protocols: dict[str, list[str]]  # target -> distinct "HTTP/2.0 TLSv1.3 ..." seen
    costs: list[Cost]

    @property
    def measured(self) -> list[Run]:
        return [r for r in self.runs if r.kind == "measure"]


def load_mode(run_dir: Path, name: str, runs: list[Run], costs: list[Cost]) -> Mode:
    d = run_dir / name
    settle = []
    if (d / "settle.tsv").exists():
        for row in read_tsv(d / "settle.tsv"):
            settle.append((int(row["t_us"]) / 1e6, int(row["rss_kb"]), int(row["sockets"])))
    requests = []
    if (d / "requests.tsv").exists():
        requests = [Request.from_row(row) for row in read_tsv(d / "requests.tsv")]
    protocols: dict[str, list[str]] = {}
    probe = d / "upstream" / "logs" / "probe.log"
    if probe.exists():
        for line in probe.read_text().splitlines():
            fields = line.split()
            if len(fields) != 4:
                continue
            target, http, tls, cipher = fields
            seen = http if tls == "-" else f"{http} over {tls} ({cipher})"  # nginx logs "-" for empty
            if seen not in protocols.setdefault(target, []):
                protocols[target].append(seen)
    return Mode(
        name=name,
        runs=[r for r in runs if r.mode == name],
        memory=read_pairs(d / "memory.tsv"),
        settle=settle,
        requests=requests,
        protocols=protocols,
        costs=[c for c in costs if c.mode == name],
    )


# -------------------------------------------------------------- formatting
def f_rps(v: float | None) -> str:
    return "–" if v is None else f"{v:,.0f}"


def f_ms(v: float | None) -> str:
    """Microseconds shown as milliseconds."""
    return "–" if v is None else f"{v / 1000:.3f}"


def f_x(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}×"


def f_us(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def f_signed(v: float | None) -> str:
    return "–" if v is None else f"{v:+.1f}"


def f_per(v: float | None) -> str:
    """A per-request count: 3 decimals below 0.1 (rare events such as migrations)."""
    return "–" if v is None else f"{v:.3f}" if v < 0.1 else f"{v:.2f}"


def f_pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f}%"


def f_mib(kb: float | None) -> str:
    return "–" if not kb else f"{kb / 1024:.1f} MiB"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def table(header: list[str], rows: Iterable[list[str]], align: list[str] | None = None) -> Lines:
    align = align or ["---:"] * len(header)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in rows]
    return out


# ----------------------------------------------------------------- report
class Report:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.meta = read_pairs(run_dir / "meta.tsv")
        tick_us = 1e6 / int(self.meta.get("clk_tck") or 100)
        runs = [Run.from_row(row, tick_us) for row in read_tsv(run_dir / "runs.tsv")]
        names = self.meta.get("upstream", "plain")
        wanted = {"both": ("tls", "plain")}.get(names, (names,))
        costs = []
        if (run_dir / "cost.tsv").exists():
            costs = [Cost.load(run_dir, row, tick_us) for row in read_tsv(run_dir / "cost.tsv")]
        self.modes = [load_mode(run_dir, m, runs, costs) for m in MODE_ORDER if m in wanted]
        self.targets = [t for t in TARGET_ORDER if t in self.meta.get("targets", "").split()]
        self.conns: list[int] = []
        for c in (int(x) for x in self.meta.get("conns", "").split()):
            if c not in self.conns:
                self.conns.append(c)
        extra = run_dir / "extra.toml"
        self.extra_toml = extra.read_text().rstrip("\n") if extra.exists() else ""

    @property
    def multi(self) -> bool:
        return len(self.modes) > 1

    def heading(self, title: str) -> str:
        """Sections are `##`, or `###` under a mode's `##` when there are two modes."""
        return ("###" if self.multi else "##") + " " + title

    @staticmethod
    def median(mode: Mode, target: str, conns: int, key: str) -> float | None:
        values = [getattr(r, key) for r in mode.measured if r.target == target and r.conns == conns]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    # -- header
    def header(self) -> Lines:
        m = self.meta.get
        out = ["# ethgas-sidecar benchmark results", ""]
        out.append(f"- Date: {m('date')}")
        out.append(f"- Command: `{m('command')}`")
        out.append(f"- Equivalent with all settings: `{m('equivalent')}`")
        out.append(f"- Machine: {m('nproc')} CPUs ({m('cpu')}), {m('mem')} RAM, kernel {m('kernel')}")
        tools = f"- Tools: {m('nginx_version')}; {m('wrk_version')}"
        if any(mode.name == "tls" for mode in self.modes) and m("nginx_openssl"):
            tools += f"; nginx built with {m('nginx_openssl')}"
        out.append(tools)
        if "sidecar" in self.targets:
            out.append(
                f"- Sidecar: `{m('sidecar_version') or 'ethgas-sidecar'}` at git {m('git')}"
                + (", with SIDECAR_EXTRA_TOML (below)" if self.extra_toml else "")
            )
        else:
            out.append(f"- Git: {m('git')}")
        settle = f", SETTLE_SECONDS={m('settle_seconds')}" if "sidecar" in self.targets else ""
        warm = (
            f", WARM=1 (WARM_INTERVAL={m('warm_interval')}, WARM_COUNT={m('warm_count')})" if m("warm") == "1" else ""
        )
        out.append(
            f"- Settings: DURATION={m('duration')}, ROUNDS={m('rounds')}, "
            f'CONNS="{m("conns")}", TARGETS="{m("targets")}", UPSTREAM={m("upstream")}, '
            f"NGINX_WORKERS={m('nginx_workers')} (nginx keepalive {m('nginx_keepalive')}/worker), "
            f"WARMUP={m('warmup')}, wrk threads=min({m('wrk_threads')}, conns){settle}{warm}; "
            f"upstream nginx: 1 worker; wall time {m('elapsed')}s; "
            f"machine {m('pre_busy')}% busy just before the start"
        )
        if "sidecar" in self.targets and self.extra_toml:
            out += ["- SIDECAR_EXTRA_TOML merged into the sidecar config:", "", "  ```toml"]
            out += ["  " + line for line in self.extra_toml.splitlines()]
            out.append("  ```")
        out.append(
            "- Load: `wrk -t2 -cC -dDURATION --latency http://127.0.0.1:PORT/api/v1/user/info` "
            "(direct adds `Authorization: Bearer <token>` itself, over `https://` in HTTPS mode; "
            "nginx and the sidecar inject it). Every number is the median over rounds; latency in ms."
        )
        if not self.multi and self.modes:
            out.append(f"- Upstream ({self.modes[0].name}): {MODE_ABOUT[self.modes[0].name]}")
        out.append("")
        return out

    # -- one mode
    def mode_sections(self, mode: Mode) -> Lines:
        out: Lines = []
        if self.multi:
            out += [f"## {MODE_TITLE[mode.name]}", "", MODE_ABOUT[mode.name][0].upper() + MODE_ABOUT[mode.name][1:], ""]
        if mode.protocols:
            seen = "; ".join(f"{t}: {' / '.join(mode.protocols[t])}" for t in self.targets if t in mode.protocols)
            out += [f"Protocols the upstream saw (the single curl requests): {seen}.", ""]
        out += self.throughput(mode)
        out += self.one_connection(mode)
        out += self.cpu(mode)
        out += self.errors(mode)
        if "sidecar" in self.targets:
            out += self.memory(mode)
        if self.meta.get("warm") == "1" or any(r.case == "first" for r in mode.requests):
            out += self.single_requests(mode)
        return out

    def throughput(self, mode: Mode) -> Lines:
        ts = self.targets
        med = self.median
        header = ["conns"] + [f"req/s {t}" for t in ts] + [f"p50 {t}" for t in ts] + [f"p99 {t}" for t in ts]
        ratios = [r for r in RATIOS if r[1] in ts and r[2] in ts]
        header += [name for name, _, _, _ in ratios]
        rows = []
        for c in self.conns:
            cells = [str(c)]
            cells += [f_rps(med(mode, t, c, "rps")) for t in ts]
            cells += [f_ms(med(mode, t, c, "p50_us")) for t in ts]
            cells += [f_ms(med(mode, t, c, "p99_us")) for t in ts]
            cells += [f_x(ratio(med(mode, a, c, key), med(mode, b, c, key))) for _, a, b, key in ratios]
            rows.append(cells)
        return [self.heading("Throughput and latency (median over rounds)"), ""] + table(header, rows) + [""]

    def added(self, mode: Mode, target: str, key: str) -> float | None:
        """target's median at 1 connection minus direct's (µs)."""
        t, d = self.median(mode, target, 1, key), self.median(mode, "direct", 1, key)
        return None if t is None or d is None else t - d

    def added_ratio(self, mode: Mode, key: str) -> float | None:
        """sidecar added / nginx added; undefined unless nginx adds something."""
        s, n = self.added(mode, "sidecar", key), self.added(mode, "nginx", key)
        return None if s is None or n is None or n <= 0 else s / n

    def one_connection(self, mode: Mode) -> Lines:
        """Issue 20: the latency one client sending one request at a time feels."""
        ts = self.targets
        have_rows = 1 in self.conns and any(self.median(mode, t, 1, "p50_us") for t in ts)
        if not have_rows and not mode.costs:
            return []
        out = [self.heading("One connection: latency added over direct, per-request system cost"), ""]
        if have_rows:
            out += [
                (
                    "The 1-connection rows above (wrk -t1 -c1: one request at a time, as a trading program "
                    "sends them). added = the target's p50 (p99) minus direct's, from the medians over rounds, "
                    "in µs: what the extra hop costs each request."
                ),
                "",
            ]
            rows = []
            for t in ts:
                p50, p99 = self.median(mode, t, 1, "p50_us"), self.median(mode, t, 1, "p99_us")
                rps = self.median(mode, t, 1, "rps")
                if t == "direct":
                    rows.append([t, f_rps(rps), f_us(p50), "–", f_us(p99), "–"])
                else:
                    a50, a99 = self.added(mode, t, "p50_us"), self.added(mode, t, "p99_us")
                    rows.append([t, f_rps(rps), f_us(p50), f_signed(a50), f_us(p99), f_signed(a99)])
            out += table(
                ["target", "req/s", "p50 µs", "added p50 µs", "p99 µs", "added p99 µs"],
                rows,
                ["---"] + ["---:"] * 5,
            )
            out.append("")
            if "sidecar" in ts and "nginx" in ts and "direct" in ts:
                r50, r99 = self.added_ratio(mode, "p50_us"), self.added_ratio(mode, "p99_us")
                rps = ratio(self.median(mode, "sidecar", 1, "rps"), self.median(mode, "nginx", 1, "rps"))
                out += [
                    f"- sidecar added / nginx added: p50 **{f_x(r50)}** (goal ≤ {ADDED_GOAL_RATIO:.2f}×), "
                    f"p99 {f_x(r99)}; sidecar/nginx req/s **{f_x(rps)}** (goal ≥ 1.00×).",
                    "",
                ]
        if mode.costs:
            out += self.cost_table(mode)
        return out

    def one_connection_summary(self) -> Lines:
        """Both upstreams in one table (UPSTREAM=both)."""
        if 1 not in self.conns or not {"direct", "nginx", "sidecar"} <= set(self.targets):
            return []
        rows = []
        for mode in self.modes:

            def p50(t: str) -> str:
                v, a = self.median(mode, t, 1, "p50_us"), self.added(mode, t, "p50_us")
                if v is None:
                    return "–"
                return f"{v:.0f} µs" if t == "direct" else f"{v:.0f} µs ({f_signed(a)})"

            def added99(t: str) -> str:
                return f_signed(self.added(mode, t, "p99_us"))

            rps = ratio(self.median(mode, "sidecar", 1, "rps"), self.median(mode, "nginx", 1, "rps"))
            cost = {c.target: c for c in mode.costs}

            def per(t: str, key: str) -> str:
                c = cost.get(t)
                return "–" if c is None else f_per(c.per_request(getattr(c, key)))

            rows.append(
                [MODE_SHORT[mode.name], p50("direct"), p50("nginx"), p50("sidecar")]
                + [f_x(self.added_ratio(mode, "p50_us")), f"{added99('nginx')} / {added99('sidecar')}", f_x(rps)]
                + [f"{per('nginx', k)} / {per('sidecar', k)}" for k in ("syscalls", "ctx_switches", "cpu_us")]
            )
        header = [
            "upstream",
            "direct p50",
            "nginx p50 (added)",
            "sidecar p50 (added)",
            "added p50 sidecar/nginx",
            "added p99 µs nginx / sidecar",
            "sidecar/nginx req/s",
            "syscalls/req nginx / sidecar",
            "ctx switches/req nginx / sidecar",
            "CPU µs/req nginx / sidecar",
        ]
        return (
            [
                "## One connection, both upstreams",
                "",
                f"From the sections above (goal: added p50 sidecar/nginx ≤ {ADDED_GOAL_RATIO:.2f}×, req/s ≥ 1.00×).",
                "",
            ]
            + table(header, rows, ["---"] + ["---:"] * (len(header) - 1))
            + [""]
        )

    def cost_table(self, mode: Mode) -> Lines:
        by_target = {c.target: c for c in mode.costs}
        ts = [t for t in ("nginx", "sidecar") if t in by_target]
        tools = {c.tool for c in mode.costs}
        dur = self.meta.get("cost_duration", "?")
        if tools == {"perf"}:
            how = (
                f"`perf stat -e raw_syscalls:sys_enter,context-switches,cpu-migrations,task-clock"
                f"{',sched:sched_waking' if any(c.wakeups is not None for c in mode.costs) else ''}` "
                "attached (`-p`) to every process of the proxy (nginx: master and workers; the sidecar: all "
                "its threads), counting exactly while wrk ran. Wake-ups = tasks the proxy woke "
                "(`sched_waking`, in the waker's context: wrk, the upstream, its own threads)."
            )
        else:
            how = (
                "`strace -c -f -p` (`COST_TOOL=strace`, or perf could not attach): system calls from strace's summary; "
                "context switches (`/proc/PID/task/*/status`) and CPU (`/proc/PID/stat`) are measured in the "
                "same run and are **inflated** by strace, which stops the process at every system call."
            )
        out = [
            (
                f"Per-request system cost: one extra run per proxy after the rounds, `wrk -t1 -c1 -d{dur}` "
                f"(requests counted by wrk), with {how} Counting slows the proxy "
                + ("a little" if tools == {"perf"} else "a lot")
                + "; the latency above comes from the rounds, which run without it."
            ),
            "",
        ]
        rows = []

        def cells(name: str, get) -> list[str]:
            vals = [by_target[t].per_request(get(by_target[t])) for t in ts]
            row = [name] + [f_per(v) for v in vals]
            if len(ts) == 2:
                row.append(f_x(ratio(vals[1], vals[0])))
            return row

        rows.append(cells("system calls", lambda c: c.syscalls))
        rows.append(cells("context switches", lambda c: c.ctx_switches))
        if any(c.migrations is not None for c in mode.costs):
            rows.append(cells("CPU migrations", lambda c: c.migrations))
        if any(c.wakeups is not None for c in mode.costs):
            rows.append(cells("wake-ups issued", lambda c: c.wakeups))
        rows.append(cells("CPU µs (task-clock)" if tools == {"perf"} else "CPU µs (/proc)", lambda c: c.cpu_us))
        req = ["requests (req/s)"] + [f"{by_target[t].requests:,} ({f_rps(by_target[t].rps)})" for t in ts]
        if len(ts) == 2:
            req.append(f_x(ratio(by_target[ts[1]].rps, by_target[ts[0]].rps)))
        rows.append(req)
        header = ["per request"] + ts + (["sidecar/nginx"] if len(ts) == 2 else [])
        return out + table(header, rows, ["---"] + ["---:"] * (len(header) - 1)) + [""]

    def cpu(self, mode: Mode) -> Lines:
        ts = self.targets
        proxies = [t for t in ts if t != "direct"]
        header = ["conns"]
        header += [f"proxy µs/req {t}" for t in proxies]
        header += [f"upstream µs/req {t}" for t in ts]
        header += [f"machine busy {t}" for t in ts]
        header += [f"other {t}" for t in ts]
        rows = []
        for c in self.conns:
            cells = [str(c)]
            cells += [f_us(self.median(mode, t, c, "proxy_us_req")) for t in proxies]
            cells += [f_us(self.median(mode, t, c, "upstream_us_req")) for t in ts]
            cells += [f_pct(self.median(mode, t, c, "busy")) for t in ts]
            cells += [f_pct(self.median(mode, t, c, "other")) for t in ts]
            rows.append(cells)
        return (
            [
                self.heading("CPU cost (median over rounds)"),
                "",
                (
                    "CPU time per request of the proxy under test (all its processes and threads) and of the "
                    "upstream, from /proc/PID/stat. Machine busy = all CPUs, wrk included. Other = busy time "
                    "not accounted to wrk, the upstream or the proxy under test (kernel softirq for loopback "
                    "traffic, plus any foreign load: a few % is normal, much more means the run was disturbed)."
                ),
                "",
            ]
            + table(header, rows)
            + [""]
        )

    def errors(self, mode: Mode) -> Lines:
        rows = []
        for t in self.targets:
            rs = [r for r in mode.runs if r.target == t]
            rows.append(
                [t, str(len(rs)), f"{sum(r.requests for r in rs):,}"]
                + [str(sum(getattr(r, k) for r in rs)) for k in ("status", "connect", "read", "write", "timeout")]
            )
        header = ["target", "runs", "requests", "non-2xx", "connect", "read", "write", "timeout"]
        align = ["---"] + ["---:"] * 7
        return [self.heading("Errors (all runs, warm-ups included)"), ""] + table(header, rows, align) + [""]

    def memory(self, mode: Mode) -> Lines:
        mem = mode.memory
        idle = int(mem["idle_rss_kb"]) if mem.get("idle_rss_kb") else None
        out = [
            self.heading("Sidecar memory"),
            "",
            f"- Idle RSS after readiness, before any load (VmRSS): {f_mib(idle)}",
            f"- Peak RSS after all runs, up to {max(self.conns)} connections (VmHWM): {f_mib(float(mem.get('peak_hwm_kb') or 0))}",
            f"- RSS at the end, after the load stopped (VmRSS): {f_mib(float(mem.get('end_rss_kb') or 0))}",
        ]
        if mode.settle and idle:
            out += self.settle(mode, idle)
        out.append("")
        return out

    def settle(self, mode: Mode, idle_kb: int) -> Lines:
        samples = mode.settle
        last_t = samples[-1][0]

        def nearest(mark: float) -> tuple[float, int, int]:
            return min(samples, key=lambda s: abs(s[0] - mark))

        points = [("idle (before the run)", None), ("load stop", samples[0])]
        points += [(f"+{m} s", nearest(m)) for m in SETTLE_MARKS_S if m <= last_t + 0.5]
        if all(abs(last_t - m) > 0.5 for m in SETTLE_MARKS_S):
            points.append((f"+{last_t:.0f} s (last)", samples[-1]))
        idle_sockets = mode.memory.get("idle_sockets", "–")
        rss_row = ["RSS (VmRSS)"] + [f_mib(idle_kb if s is None else s[1]) for _, s in points]
        above_row = ["above idle"] + ["–" if s is None else f"{(s[1] - idle_kb) / 1024:+.1f} MiB" for _, s in points]
        sock_row = ["open sockets"] + [idle_sockets if s is None else str(s[2]) for _, s in points]
        back = next((s for s in samples if s[1] <= idle_kb + SETTLE_GOAL_KB), None)
        if back is None:
            verdict = f"not within {last_t:.0f} s: {(samples[-1][1] - idle_kb) / 1024:+.1f} MiB above idle at the end"
        elif back is samples[0]:
            verdict = "already at load stop"
        else:
            verdict = f"after {back[0]:.0f} s"
        after = mode.memory.get("settle_after_conns", "?")
        return (
            [
                "",
                (
                    f"After the burst: VmRSS sampled every second for {last_t:.0f} s from the moment the sidecar's last "
                    f"run ({after} connections) stopped, while the other targets finished the round (the sidecar was idle). "
                    "Open sockets = the sidecar's listeners and upstream connections (the clients are gone)."
                ),
                "",
            ]
            + table(
                ["", *[name for name, _ in points]], [rss_row, above_row, sock_row], ["---"] + ["---:"] * len(points)
            )
            + [
                "",
                f"- Back within idle + {SETTLE_GOAL_KB // 1024} MiB: {verdict} (goal: within 120 s).",
            ]
        )

    def single_requests(self, mode: Mode) -> Lines:
        ts = [t for t in self.targets if any(r.target == t for r in mode.requests)]
        if not ts:
            return []
        base_conns = min(self.conns)
        p50 = {t: self.median(mode, t, base_conns, "p50_us") for t in ts}
        last_end = {
            t: max([r.end_us for r in mode.runs if r.target == t] + [c.end_us for c in mode.costs if c.target == t] + [0])
            for t in ts
        }
        key_target = "sidecar" if "sidecar" in ts else ts[0]

        def quiet_before(req: Request) -> str:
            earlier = [
                r.start_us for r in mode.requests if r.target == req.target and r.case == "warm" and r.seq < req.seq
            ]
            since = max(earlier + [last_end[req.target]])
            return f"{(req.start_us - since) / 1e6:.0f} s"

        header = ["request", f"quiet before ({key_target})"]
        for t in ts:
            header += [f"{t} ms", f"{t} × p50", f"{t} total ms"]
        rows = []
        seqs = sorted({(r.case != "first", r.seq) for r in mode.requests})
        for is_warm, seq in seqs:
            case = "warm" if is_warm else "first"
            by_target = {r.target: r for r in mode.requests if r.case == case and r.seq == seq}
            key_req = by_target.get(key_target)
            cells = ["first after start" if case == "first" else f"warm {seq}"]
            cells.append("–" if case == "first" or key_req is None else quiet_before(key_req))
            for t in ts:
                r = by_target.get(t)
                if r is None:
                    cells += ["–", "–", "–"]
                elif not r.ok:
                    cells += [f"HTTP {r.code}", "–", "–"]
                else:
                    cells += [f_ms(r.latency_us), f_x(ratio(r.latency_us, p50[t])), f_ms(r.total_us)]
            rows.append(cells)
        steady = [f"steady state: p50 at {base_conns} conn{'s' if base_conns != 1 else ''} (wrk)", ""]
        for t in ts:
            steady += [f_ms(p50[t]), "1.00×" if p50[t] else "–", "–"]
        rows.append(steady)

        interval = self.meta.get("warm_interval", "?")
        out = [
            self.heading("Single requests: first after start, warm path"),
            "",
            "One client, one curl request at a time on a fresh connection (`curl --http1.1`, as a legacy "
            'program that connects per call). "first after start" is the first request through each target '
            "after it started (the sanity check)."
            + (
                f' "warm N" is the warm path: one request every {interval} s after the load'
                + (" and the after-burst sampling" if mode.settle else "")
                + "."
                if self.meta.get("warm") == "1"
                else ""
            ),
            "",
            (
                "ms = from the request being sent until the response ended (curl `time_total − time_pretransfer`, "
                "the span wrk's latency covers); × p50 = that over the target's steady-state p50 at "
                f"{base_conns} connection{'s' if base_conns != 1 else ''}; total ms = curl's `time_total`, with the "
                "client's own connect (and, for direct in HTTPS mode, its TLS handshake)."
            ),
            "",
        ]
        out += table(header, rows, ["---", "---:"] + ["---:"] * (3 * len(ts)))
        out.append("")
        for t in ts:
            warm = [r for r in mode.requests if r.target == t and r.case == "warm" and r.ok]
            if warm and p50[t]:
                worst = max(warm, key=lambda r: r.latency_us)
                goal = f" (goal: within {WARM_GOAL_RATIO:.0f}×)" if t == "sidecar" else ""
                out.append(
                    f"- {t}: slowest warm-path request {f_ms(worst.latency_us)} ms = "
                    f"{f_x(ratio(worst.latency_us, p50[t]))} its steady-state p50{goal}."
                )
        if out[-1] != "":
            out.append("")
        return out

    # -- whole report
    def judge(self) -> tuple[bool, list[str]]:
        """Whether the sidecar failed, and the verdict's lines: every request
        through the sidecar must succeed; the others' errors and a busy
        machine are warnings."""
        fail = False
        lines: list[str] = []
        for mode in self.modes:
            prefix = f"{MODE_SHORT[mode.name]}: " if self.multi else ""
            failed_single = {t: [r for r in mode.requests if r.target == t and not r.ok] for t in self.targets}
            for t in sorted(self.targets, key=lambda t: t != "sidecar"):
                rs = [r for r in mode.runs if r.target == t]
                cs = [c for c in mode.costs if c.target == t]
                status = sum(r.status for r in rs) + sum(c.status for c in cs)
                sock = sum(r.sockerr for r in rs) + sum(c.sockerr for c in cs)
                if t == "sidecar" and (status or sock):
                    fail = True
                    lines.append(
                        f"{prefix}**FAIL**: the sidecar had {status} non-2xx responses and {sock} socket errors "
                        "(expected 0: every request must reach the upstream with the right token)."
                    )
                elif t == "sidecar" and not failed_single[t]:
                    lines.append(
                        f"{prefix}PASS: the sidecar answered every request with 200 (0 non-2xx, 0 socket errors)."
                    )
                elif status or sock:
                    lines.append(f"{prefix}WARNING: {t} had {status} non-2xx responses and {sock} socket errors.")
                for r in failed_single[t]:
                    what = "the first request after start" if r.case == "first" else f"warm-path request {r.seq}"
                    if t == "sidecar":
                        fail = True
                        lines.append(f"{prefix}**FAIL**: {what} through the sidecar answered {r.code}.")
                    else:
                        lines.append(f"{prefix}WARNING: {what} through {t} answered {r.code}.")
        limit = float(self.meta.get("other_warn") or 15)
        measured = [r for mode in self.modes for r in mode.measured]
        disturbed = [r for r in measured if r.other > limit]
        if disturbed:
            lines.append(
                f"WARNING: {len(disturbed)} of {len(measured)} measured runs had more than "
                f"{limit:.0f}% CPU used by something else (max {max(r.other for r in disturbed):.0f}%); "
                "the machine was not idle, so rerun before trusting these numbers."
            )
        pre = self.meta.get("pre_busy", "")
        if pre and float(pre) > limit:
            lines.append(f"WARNING: the machine was {float(pre):.0f}% busy in the second before the benchmark started.")
        return fail, lines

    def raw(self, mode: Mode) -> Lines:
        title = "Raw per-round results (measured runs)"
        if self.multi:
            title = f"Raw per-round results (measured runs), {MODE_TITLE[mode.name]}"
        names = [
            "round",
            "conns",
            "order",
            "target",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "non-2xx",
            "socket err",
            "proxy µs/req",
            "upstream µs/req",
            "wrk µs/req",
            "busy",
            "other",
        ]
        align = ["---:", "---:", "---:", "---"] + ["---:"] * 12

        def order(r: Run) -> tuple[int, int, int]:
            return (r.round, self.conns.index(r.conns) if r.conns in self.conns else 0, r.pos)

        rows = [
            [
                str(r.round),
                str(r.conns),
                str(r.pos),
                r.target,
                f_rps(r.rps),
                f_ms(r.p50_us),
                f_ms(r.p90_us),
                f_ms(r.p99_us),
                f_ms(r.max_us),
                str(r.status),
                str(r.sockerr),
                f_us(r.proxy_us_req),
                f_us(r.upstream_us_req),
                f_us(r.wrk_us_req),
                f_pct(r.busy),
                f_pct(r.other),
            ]
            for r in sorted(mode.measured, key=order)
        ]
        return [f"<details><summary>{title}</summary>", ""] + table(names, rows, align) + ["", "</details>"]

    def render(self) -> Lines:
        out = self.header()
        for mode in self.modes:
            out += self.mode_sections(mode)
        if self.multi:
            out += self.one_connection_summary()
        _, verdict = self.judge()
        if verdict:
            out += ["## Verdict", ""] + [f"- {v}" for v in verdict] + [""]
        for i, mode in enumerate(self.modes):
            if i:
                out.append("")
            out += self.raw(mode)
        return out


def progress(run_dir: Path) -> str:
    """run.sh's log line for the last wrk run."""
    meta = read_pairs(run_dir / "meta.tsv")
    rows = read_tsv(run_dir / "runs.tsv")
    if not rows:
        return "no runs yet"
    r = Run.from_row(rows[-1], 1e6 / int(meta.get("clk_tck") or 100))
    return (
        f"{r.mode:<5} {r.kind:<7} r{r.round:<2} c={r.conns:<4} {r.target:<8} {r.rps:10.0f} req/s  "
        f"p50 {r.p50_us / 1000:8.3f} ms  p99 {r.p99_us / 1000:8.3f} ms  non2xx {r.status}  "
        f"sockerr {r.sockerr}  cpu {r.busy:3.0f}% (other {r.other:2.0f}%)"
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("report", "progress"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    run_dir = Path(args[1])
    if args[0] == "progress":
        print(progress(run_dir))
        return 0
    report = Report(run_dir)
    print("\n".join(report.render()))
    failed, _ = report.judge()
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
