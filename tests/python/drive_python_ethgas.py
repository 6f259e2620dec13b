"""Drives the real python-ethgas client (PyPI, pinned in requirements.txt)
through an ethgas-sidecar, as a trader's program would use it with its base
URLs pointed at the sidecar.

Run by tests/python_ethgas.rs against the in-process live mock and a
wallet-mode sidecar; the Rust test then checks on the mock that none of the
client's logins reached the API and that every private call carried the
sidecar's real token. Prints one line per exercised call, ``PASS name:
detail`` or ``FAIL name: detail``, and exits 0 only if every call passed.

The client is given a throwaway private key: the sidecar answers the
client's login itself and accepts any signature for its own address, so the
program never needs the account's key.
"""

import argparse
import json
import logging
import os
import queue
import sys
import threading
import time
import urllib.request

import requests
from eth_account import Account
from ethgas.rest import api_constants
from ethgas.rest.api_client import APIClient
from ethgas.utils import constants
from ethgas.websocket.ws_client import WsClient
from ethgas.websocket.ws_constants import MarketType

# Every wait below is bounded by this; the whole run by WATCHDOG_S.
WAIT_S = 30
WATCHDOG_S = 150

results = []


def report(name, ok, detail=""):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)


def check(name, fn):
    """Runs one exercised call; an exception is a failure, not a crash."""
    try:
        ok, detail = fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported
        ok, detail = False, f"{type(e).__name__}: {e}"
    report(name, ok, detail)
    return ok


def watchdog():
    print(f"FAIL watchdog: the run did not finish within {WATCHDOG_S} s "
          "(WsClient.start_ws() spins forever when the handshake is refused)", flush=True)
    os._exit(3)


class RecordingWsClient(WsClient):
    """WsClient as shipped, plus a record of what reached its callbacks."""

    def __init__(self, *args, **kwargs):
        self.seen = queue.Queue()
        super().__init__(*args, **kwargs)

    def on_message(self, ws, message):
        self.seen.put(("message", message))
        super().on_message(ws, message)

    def on_pong(self, ws, message):
        self.seen.put(("pong", message))
        super().on_pong(ws, message)

    def wait_for(self, want, what):
        """The first recorded item for which want(kind, payload) holds."""
        deadline = time.monotonic() + WAIT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {what} within {WAIT_S} s")
            try:
                kind, payload = self.seen.get(timeout=left)
            except queue.Empty:
                continue
            if want(kind, payload):
                return payload

    def wait_event(self, event):
        def want(kind, payload):
            if kind != "message" or payload in ("ping", "pong"):
                return False
            return json.loads(payload).get("event") == event
        return json.loads(self.wait_for(want, f"{event!r} event"))

    def send_op(self, message):
        """Sends an op the way the client sends its own (with an id)."""
        self._WsClient__send_message(message=message)


def readyz(admin):
    """The readiness summary of the sidecar (the `data` of /readyz)."""
    with urllib.request.urlopen(f"{admin}/readyz", timeout=10) as r:
        return json.loads(r.read())["data"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rest", required=True, help="the sidecar, http://127.0.0.1:PORT")
    p.add_argument("--ws", required=True, help="ws://127.0.0.1:PORT/ws")
    p.add_argument("--admin", required=True, help="the sidecar's admin listener")
    p.add_argument("--address", required=True, help="the sidecar's wallet address")
    p.add_argument("--chain-id", required=True, type=int)
    args = p.parse_args()
    threading.Timer(WATCHDOG_S, watchdog).start()

    log = logging.getLogger("python-ethgas")
    log.addHandler(logging.StreamHandler(sys.stderr))
    log.setLevel(logging.WARNING)
    throwaway_key = Account.create().key.hex()
    private_calls = 0

    # The login challenge as the client receives it: the API's network.
    def challenge():
        r = requests.post(f"{args.rest}{api_constants.LOGIN_ENDPOINT}",
                          params={"addr": args.address, "chainId": args.chain_id}, timeout=WAIT_S)
        typed = json.loads(r.json()["data"]["eip712Message"])
        chain = typed["domain"]["chainId"]
        return chain == args.chain_id, f"eip712Message domain.chainId = {chain}"
    check("login challenge chainId", challenge)

    # APIClient: login (challenge, signature, verify), user/info, trading account.
    client = None

    def construct():
        nonlocal client, private_calls
        client = APIClient(rest_url=args.rest, chain_id=str(args.chain_id), account_address=args.address,
                           private_key=throwaway_key, refresh_interval=3600, re_login_interval=604800,
                           logger=log)
        private_calls += 1  # its user/info
        return client.is_logged_in(), "logged in with a placeholder token from the sidecar"
    if not check("APIClient login (login, login/verify)", construct):
        return finish(private_calls)

    def user_info():
        nonlocal private_calls
        info = client.get_user_info()
        private_calls += 1
        accounts = info["user"]["accounts"]
        trading = [a["accountId"] for a in accounts if a.get("type") == 2]
        ok = bool(trading) and client.get_default_trading_account() == trading[0]
        return ok, f"userId {info['user']['userId']}, default trading account {client.get_default_trading_account()}"
    check("GET /api/v1/user/info", user_info)

    def public():
        res = client.get_all_ip_markets()
        return res.get("success") is True, "public market data"
    check("GET /api/v1/p/inclusion-preconf/markets", public)

    def account():
        nonlocal private_calls
        res = client.get_account_info()
        private_calls += 1
        return res.get("success") is True, f"GET {res.get('data', {}).get('path')}"
    check("GET /api/v1/user/account/{id}", account)

    def order():
        nonlocal private_calls
        res = client.create_ip_order(instrument_id="ETH-PC-1", side=True, order_type=2, quantity=0.1, price=1.5)
        private_calls += 1
        return res.get("success") is True, f"POST {res.get('data', {}).get('path')}"
    check("POST /api/v1/inclusion-preconf/order", order)

    def refresh():
        before = client.get_access_token()
        client._refresh_access_token()
        after = client.get_access_token()
        return after is not None and after != before, "a new placeholder token"
    check("POST /api/v1/user/login/refresh", refresh)

    def re_login():
        before = client.get_access_token()
        client._re_login()
        after = client.get_access_token()
        return client.is_logged_in() and after != before, "the full login again, a new placeholder"
    check("re-login (APIClient._re_login)", re_login)

    def after_re_login():
        nonlocal private_calls
        res = client.get_account_info()
        private_calls += 1
        return res.get("success") is True, "a private call with the new placeholder"
    check("GET /api/v1/user/account/{id} after re-login", after_re_login)

    # WsClient: the handshake (Origin: http://127.0.0.1:PORT), the in-socket login.
    ws = None

    def ws_connect():
        nonlocal ws
        made = []
        # WsClient() returns once connected, and spins forever if the
        # handshake is refused: bounded here.
        opener = threading.Thread(daemon=True, target=lambda: made.append(
            RecordingWsClient(ws_url=args.ws, api_client=client, logger=log)))
        opener.start()
        opener.join(WAIT_S)
        if not made:
            return False, f"not connected to {args.ws} within {WAIT_S} s (handshake refused?)"
        ws = made[0]
        reply = ws.wait_event("login")
        return reply.get("code") == 0, f"connected to {args.ws}; login answered {reply}"
    if not check("WsClient connect + op login", ws_connect):
        return finish(private_calls)

    def subscribe():
        ws.subscribe_market_update(market_type=MarketType.INCLUSION_PRECONF)
        reply = ws.wait_event("subscribe")
        return reply.get("code") == 0, f"subscribe answered {reply}"
    check("WsClient subscribe preconfMarketUpdate", subscribe)

    def text_ping():
        ws.send_ping()
        ws.wait_for(lambda kind, payload: kind == "message" and payload == "pong", "text pong")
        return True, "'ping' answered 'pong' by the API"
    check("WsClient ping/pong (text)", text_ping)

    def frame_ping():
        ws._WsClient__ws_session.sock.ping("are you there")
        ws.wait_for(lambda kind, payload: kind == "pong", "pong frame")
        return True, "ping frame answered with a pong frame"
    check("WebSocket ping/pong (frames)", frame_ping)

    def renewal():
        # Two renewals: the token the socket was first logged in with has
        # expired by then, so a logged-in socket holds a newer one.
        start = readyz(args.admin)["refreshes"]
        deadline = time.monotonic() + WAIT_S
        while readyz(args.admin)["refreshes"] < start + 2:
            if time.monotonic() > deadline:
                return False, "the sidecar did not renew its token"
            time.sleep(0.1)
        ws.send_op({"op": "query", "args": [{"channel": "whoami"}]})
        reply = ws.wait_event("query")
        ok = reply.get("data", {}).get("authenticated") is True
        return ok, f"after two renewals of the sidecar's token the socket is logged in: {reply.get('data')}"
    check("WsClient socket after the sidecar's renewal", renewal)

    def logout():
        # APIClient has no logout method: sent through its own request path.
        res = client._send_request(session_type=constants.SessionType.PRIVATE,
                                   method=constants.RequestMethod.POST, url=api_constants.LOGOUT_ENDPOINT)
        return res == {}, f"answered {res}"
    check("POST /api/v1/user/logout", logout)

    def after_logout():
        nonlocal private_calls
        info = client.get_user_info()
        private_calls += 1
        return bool(info.get("user")), "the account's session lives on for other programs"
    check("GET /api/v1/user/info after logout", after_logout)

    try:
        ws._WsClient__ws_session.close()
        client.close_all_session()
    except Exception:  # noqa: BLE001 - closing is best effort
        pass
    return finish(private_calls)


def finish(private_calls):
    print(f"private calls: {private_calls}", flush=True)
    ok = bool(results) and all(results)
    print(f"{'ALL PASS' if ok else 'SOME FAILED'} ({sum(results)}/{len(results)})", flush=True)
    # The client's timers are not daemon threads: leave without them.
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
