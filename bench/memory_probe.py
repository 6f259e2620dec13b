#!/usr/bin/env python3
"""Memory a sidecar keeps per connection (issue 18, items 4 and 5).

Starts the sidecar binary against the built-in mock API (for the login) and
an API of this script's own on 127.0.0.1, opens many connections, and
prints the sidecar's RSS (VmRSS of /proc/PID/status) before and after.

  post  N connections each POST a BODY-byte request to an API that reads it
        and never answers (a slow API): what the sidecar keeps per request
        in flight.
  ws    N WebSockets: RSS after one small message each, after one LARGE-byte
        message from the program (answered with "ok"), and after one
        LARGE-byte message echoed back by the API, each after SETTLE s idle.

Usage:
  bench/memory_probe.py post --binary target/release/ethgas-sidecar [-n 1000] [--body 65536]
  bench/memory_probe.py ws   --binary target/release/ethgas-sidecar [-n 200] [--large 1048576]
Only loopback addresses are used; nothing is left running.
"""

import argparse
import asyncio
import base64
import hashlib
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time

TOKEN_BODY = b'{"code":200,"message":"OK","data":{"accessToken":"x.y.z","expiresIn":3600}}'
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        kib = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    return kib / 1024


async def read_head(reader: asyncio.StreamReader) -> tuple[str, dict]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers


# --- the slow HTTP API (post) -------------------------------------------------

class SlowApi:
    def __init__(self):
        self.bodies = 0
        self.hold = asyncio.Event()

    async def serve(self, reader, writer):
        try:
            while True:
                line, headers = await read_head(reader)
                await reader.readexactly(int(headers.get("content-length", "0")))
                if "/user/login" in line:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(TOKEN_BODY), TOKEN_BODY))
                    await writer.drain()
                    continue
                self.bodies += 1
                await self.hold.wait()
                return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()


# --- the WebSocket API (ws) ---------------------------------------------------

def ws_frame(opcode: int, payload: bytes, mask: bool) -> bytes:
    n = len(payload)
    head = bytes([0x80 | opcode])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n <= 0xFFFF:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big") if n else b""
    return head + key + masked


async def ws_read(reader) -> tuple[int, bytes]:
    """One whole message (frames joined; control frames skipped)."""
    data, op = b"", None
    while True:
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", await reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", await reader.readexactly(8))[0]
        key = await reader.readexactly(4) if b1 & 0x80 else None
        payload = await reader.readexactly(n)
        if key:
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big") if n else b""
        opcode = b0 & 0x0F
        if opcode >= 8:
            if opcode == 8:
                raise ConnectionError("closed")
            continue
        op = op if opcode == 0 else opcode
        data += payload
        if b0 & 0x80:
            return op, data


async def ws_api(reader, writer):
    """Echoes messages that start with E; answers others with "ok"."""
    try:
        _, headers = await read_head(reader)
        accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + WS_GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while True:
            op, data = await ws_read(reader)
            writer.write(ws_frame(op, data, False) if data[:1] == b"E" else ws_frame(1, b"ok", False))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, KeyError, asyncio.CancelledError):
        writer.close()


async def ws_client(port: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    key = base64.b64encode(os.urandom(16))
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
    line, headers = await read_head(reader)
    if " 101 " not in line:
        body = await reader.read(int(headers.get("content-length", "0")) or 1000)
        raise SystemExit(f"no WebSocket: {line} {body!r}")
    return reader, writer


async def ws_round(conns, payload: bytes, expect: int):
    async def one(rw):
        reader, writer = rw
        writer.write(ws_frame(2, payload, True))
        await writer.drain()
        _, data = await ws_read(reader)
        assert len(data) == expect, (len(data), expect)
    await asyncio.gather(*(one(c) for c in conns))


# --- the sidecar --------------------------------------------------------------

def start_sidecar(binary: str, tmp: str, api_port: int, ws_port: int | None, proxy_extra: str = "") -> tuple[subprocess.Popen, subprocess.Popen, int]:
    mock_port, proxy_port = free_port(), free_port()
    mock = subprocess.Popen([binary, "mock-api", "--listen", f"127.0.0.1:{mock_port}", "--username", "u",
                             "--password", "p"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pw = os.path.join(tmp, "pw")
    with open(pw, "w") as f:
        f.write("p\n")
    os.chmod(pw, 0o600)
    base = f"http://127.0.0.1:{api_port}" if ws_port is None else f"http://127.0.0.1:{mock_port}"
    ws = f'websocket_url = "ws://127.0.0.1:{ws_port}/"\n' if ws_port else ""
    cfg = os.path.join(tmp, "config.toml")
    with open(cfg, "w") as f:
        f.write(f'[proxy]\nlisten = "127.0.0.1:{proxy_port}"\nworker_threads = 1\n{proxy_extra}'
                f'[upstream]\nbase_url = "{base}"\nrequest_timeout = "300s"\n{ws}'
                f'[auth]\nusername = "u"\npassword_file = "{pw}"\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
                f'[log]\nlevel = "warn"\n')
    proc = subprocess.Popen([binary, "run", "--config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return mock, proc, proxy_port


async def wait_port(port: int):
    for _ in range(200):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


async def post(args, tmp):
    api = SlowApi()
    server = await asyncio.start_server(api.serve, "127.0.0.1", 0, backlog=4096)
    api_port = server.sockets[0].getsockname()[1]
    mock, proc, port = start_sidecar(args.binary, tmp, api_port, None, args.proxy)
    try:
        await wait_port(port)
        await asyncio.sleep(2)
        before = rss_mib(proc.pid)
        body = b"x" * args.body
        writers = []
        for _ in range(args.n):
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"POST /api/v1/user/order HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            writers.append(w)
        deadline = time.time() + 120
        while api.bodies < args.n and time.time() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(args.settle)
        after = rss_mib(proc.pid)
        print(f"post: {api.bodies}/{args.n} requests of {args.body} bytes in flight at the API: "
              f"RSS {before:.1f} -> {after:.1f} MiB, {(after - before) * 1024 / args.n:.0f} KiB per connection")
        api.hold.set()
    finally:
        proc.kill(), mock.kill()
        server.close()


async def ws(args, tmp):
    server = await asyncio.start_server(ws_api, "127.0.0.1", 0, backlog=4096, limit=1 << 24)
    ws_port = server.sockets[0].getsockname()[1]
    mock, proc, port = start_sidecar(args.binary, tmp, 0, ws_port, args.proxy)
    try:
        await wait_port(port)
        await asyncio.sleep(2)
        base = rss_mib(proc.pid)
        conns = [await ws_client(port) for _ in range(args.n)]
        await ws_round(conns, b"Esmall", 6)
        await asyncio.sleep(args.settle)
        small = rss_mib(proc.pid)
        await ws_round(conns, b"x" * args.large, 2)
        await asyncio.sleep(args.settle)
        sent = rss_mib(proc.pid)
        await ws_round(conns, b"E" * args.large, args.large)
        await asyncio.sleep(args.settle)
        echoed = rss_mib(proc.pid)
        per = lambda v: (v - base) / args.n
        print(f"ws: {args.n} sockets, RSS idle {base:.1f} MiB; after small messages {small:.1f} MiB "
              f"({per(small):.3f} MiB/socket); after {args.large} bytes from the program {sent:.1f} MiB "
              f"({per(sent):.3f} MiB/socket); after {args.large} bytes echoed by the API {echoed:.1f} MiB "
              f"({per(echoed):.3f} MiB/socket)")
        for _, w in conns:
            w.close()
    finally:
        proc.kill(), mock.kill()
        server.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["post", "ws"])
    p.add_argument("--binary", required=True)
    p.add_argument("-n", type=int)
    p.add_argument("--body", type=int, default=65536)
    p.add_argument("--large", type=int, default=1 << 20)
    p.add_argument("--proxy", default="", help='extra [proxy] lines, e.g. "replay_budget_bytes = 0\\n"')
    p.add_argument("--settle", type=float, default=6.0, help="seconds idle before each RSS reading")
    args = p.parse_args()
    args.n = args.n or (1000 if args.mode == "post" else 200)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(post(args, tmp) if args.mode == "post" else ws(args, tmp))


if __name__ == "__main__":
    sys.exit(main())
