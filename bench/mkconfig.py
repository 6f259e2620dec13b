#!/usr/bin/env python3
"""What a benchmark run needs before anything starts: free ports, the run's
tokens, and the sidecar's configuration file.

bench/run.sh calls it; it never starts a process or opens a connection.

    mkconfig.py ports N          N free TCP ports on 127.0.0.1, on one line
    mkconfig.py tokens           an access and a refresh JWT, on one line
    mkconfig.py sidecar --listen ADDR --admin ADDR --base-url URL
                        --password-file PATH [--ca-file PATH] [--extra FILE]
                                 the sidecar's config.toml, on stdout

`--extra` is SIDECAR_EXTRA_TOML saved to a file. It is merged into the
generated config rather than appended: keys under an existing section
(`[upstream]`, `[log]`, ...) are added or override, new sections are added.
Appending would repeat a table, which TOML forbids.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import socket
import sys
import time
from typing import Any

Table = dict[str, Any]

# A TOML key that needs no quotes.
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out for port 0, all bound at once so that they
    differ. They are free again when this returns; the run binds them within
    seconds, which is the usual (small) race of this technique."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(payload: dict[str, Any]) -> str:
    """A JWT-shaped token. The sidecar reads `exp` from it to plan the
    refresh; nobody checks the signature, so it is random bytes."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{head}.{body}.{_b64(os.urandom(32))}"


def run_tokens(now: int) -> tuple[str, str]:
    """The access token (valid a day: it never expires during a run, so the
    refresh path is not measured) and a refresh token."""
    access = jwt({"sub": "bench", "exp": now + 86400})
    refresh = jwt({"sub": "bench", "typ": "refresh", "exp": now + 7 * 86400})
    return access, refresh


def sidecar_config(
    listen: str,
    admin: str,
    base_url: str,
    password_file: str,
    ca_file: str | None,
) -> Table:
    """The generated config, sections in the order of config.toml.example."""
    upstream: Table = {"base_url": base_url}
    if ca_file:
        upstream["ca_file"] = ca_file
    return {
        "proxy": {"listen": listen},
        "upstream": upstream,
        "auth": {"username": "bench", "password_file": password_file},
        "admin": {"listen": admin},
        "log": {"level": "warn"},
    }


def merge(dst: Table, src: Table) -> None:
    """Deep-merge `src` into `dst`: tables merge, anything else replaces."""
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            merge(dst[key], value)
        else:
            dst[key] = value


class TomlError(Exception):
    """A value this small writer cannot express (dates, for example)."""


def _key(key: str) -> str:
    return key if BARE_KEY.match(key) else json.dumps(key)


def _value(v: Any) -> str:
    # bool before int: bool is an int in Python.
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        # A JSON string is a valid TOML basic string.
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TomlError(f"unsupported value {v!r}")


def to_toml(table: Table, path: tuple[str, ...] = ()) -> list[str]:
    """TOML lines for `table`: its scalars under a `[path]` header, then each
    sub-table as its own section."""
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    lines = []
    if path and (scalars or not tables):
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    lines += [f"{_key(k)} = {_value(v)}" for k, v in scalars.items()]
    for k, v in tables.items():
        lines += to_toml(v, path + (k,))
    return lines


def load_extra(path: str) -> Table:
    # Imported here: tomllib is Python 3.11+, and only this option needs it.
    import tomllib

    with open(path, "rb") as f:
        return tomllib.load(f)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/mkconfig.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ports = sub.add_parser("ports", help="free TCP ports on 127.0.0.1")
    ports.add_argument("count", type=int)
    sub.add_parser("tokens", help="an access and a refresh JWT")
    sidecar = sub.add_parser("sidecar", help="the sidecar's config.toml")
    sidecar.add_argument("--listen", required=True)
    sidecar.add_argument("--admin", required=True)
    sidecar.add_argument("--base-url", required=True)
    sidecar.add_argument("--password-file", required=True)
    sidecar.add_argument("--ca-file")
    sidecar.add_argument("--extra", help="TOML to merge in (SIDECAR_EXTRA_TOML)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "ports":
        print(" ".join(str(p) for p in free_ports(args.count)))
        return 0
    if args.command == "tokens":
        print(" ".join(run_tokens(int(time.time()))))
        return 0
    config = sidecar_config(args.listen, args.admin, args.base_url, args.password_file, args.ca_file)
    if args.extra:
        try:
            merge(config, load_extra(args.extra))
        except ValueError as e:  # tomllib.TOMLDecodeError is a ValueError
            print(f"SIDECAR_EXTRA_TOML is not valid TOML: {e}", file=sys.stderr)
            return 1
    try:
        print("\n".join(to_toml(config)))
    except TomlError as e:
        print(f"SIDECAR_EXTRA_TOML: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
