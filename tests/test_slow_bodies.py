"""Slow bodies and idle sockets against `robutler serve` (issue #24, item 2), live.

The probe's attack, scaled down: more connections than `--limit-concurrency` dribbling
a body a byte at a time, and as many idle sockets. The limit counts requests in progress,
so real requests are still answered; the dribblers get a 408 at the body timeout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import httpx
from test_cli import serving

LIMIT = 8
SLOW = 2 * LIMIT  # dribbling a body
IDLE = 2 * LIMIT  # connected, sending nothing


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_slow_bodies_and_idle_sockets_do_not_take_serve_offline() -> None:
    with serving(
        "--limit-concurrency", str(LIMIT), "--body-timeout", "2", "--min-body-rate", "100"
    ) as (base, _):
        head = (
            b"POST /echo/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
        )
        slow = [_connect(base) for _ in range(SLOW)]
        idle = [_connect(base) for _ in range(IDLE)]
        stop = threading.Event()

        def dribble() -> None:  # a byte per connection every 0.25 s, as long as allowed
            for _ in range(40):  # bounded: 10 s at most
                if stop.wait(0.25):
                    return
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.sendall(b" ")

        dribbler = threading.Thread(target=dribble, daemon=True)
        try:
            for sock in slow:
                sock.sendall(head)
            dribbler.start()
            time.sleep(0.3)  # the server has all of them
            body = {"messages": [{"role": "user", "content": "hi"}]}
            statuses = [
                httpx.post(f"{base}/echo/chat/completions", json=body, timeout=10).status_code
                for _ in range(2 * LIMIT)
            ]
            assert statuses == [200] * (2 * LIMIT), statuses
            # The dribblers are cut off: 408 at about 2 s (plus 1 s per 100 bytes sent).
            answers = []
            for sock in slow:
                sock.settimeout(10)
                try:
                    answers.append(sock.recv(4096))
                except TimeoutError:
                    answers.append(b"timeout")
            assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[:3]
            assert b'"code":"request_timeout"' in answers[0]
        finally:
            stop.set()
            if dribbler.is_alive():
                dribbler.join(5)
            for sock in slow + idle:
                sock.close()
