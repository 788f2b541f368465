"""A live server under uvicorn and a raw-socket HTTP/1.1 client."""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import h11

from .checks import ClientView, check_isolation, check_request
from .plans import RequestBatch, Scenario
from .probe import Trace
from .targets import Target, registered


class LiveClient:
    """One request over a raw socket to 127.0.0.1, parsed by h11 as it arrives.

    Closing it tells the trace (and, when its plan says so, cancels the request on the
    server as a host would).
    """

    def __init__(
        self, port: int, trace: Trace, headers: Mapping[str, str] | None, timeout: float
    ) -> None:
        self.trace = trace
        self.timeout = timeout
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.frames = 0
        self.complete = False
        self.eof = False
        self.closed = False
        self.problems: list[str] = []
        body = trace.body
        self.conn = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="POST",
            target=trace.path,
            headers=[
                ("host", f"127.0.0.1:{port}"),
                ("content-length", str(len(body))),
                ("connection", "close"),
                *trace.headers(headers),
            ],
        )
        data = (
            self.conn.send(request)
            + self.conn.send(h11.Data(data=body))
            + self.conn.send(h11.EndOfMessage())
        )
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(data)

    @property
    def active(self) -> bool:
        return not (self.closed or self.complete or self.eof)

    def _pump(self, wait: float) -> None:
        ready, _, _ = select.select([self.sock], [], [], max(0.0, wait))
        if not ready:
            return
        try:
            data = self.sock.recv(65536)
        except OSError:
            data = b""
        try:
            self.conn.receive_data(data)
            for _ in range(10_000):
                event = self.conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                if isinstance(event, h11.Response):
                    self.status = event.status_code
                    self.headers = {
                        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers
                    }
                elif isinstance(event, h11.Data):
                    self.body += event.data
                    if event.chunk_end:
                        self.frames += 1
                elif isinstance(event, h11.EndOfMessage):
                    self.complete = True
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    self.eof = True
                    break
        except h11.RemoteProtocolError as exc:
            self.eof = True
            self.problems.append(f"the server broke the HTTP stream: {exc}")
        if not data:
            self.eof = True

    def read_until(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Read until `done()` or the answer ends, for at most `timeout` s."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        for _ in range(100_000):
            if done() or not self.active:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._pump(left)
        return done()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()
            self.trace.client_closes(self.complete)
            if self.trace.scenario.client.host_cancels:
                self.trace.cancel_from_host()

    def view(self) -> ClientView:
        return ClientView(
            self.status,
            dict(self.headers),
            bytes(self.body),
            self.complete,
            left=not self.complete,
            problems=list(self.problems),
        )


class LiveApp:
    """A probed server under uvicorn on 127.0.0.1."""

    def __init__(self, target: Target, headers: Mapping[str, str] | None, timeout: float) -> None:
        from ..live import LiveServer

        self.probe = target.probe(fresh=False)
        self.headers = headers
        self.timeout = timeout
        self.server = LiveServer(self.probe.asgi, interface="asgi3").start()
        if self.probe.loop is None:
            # no lifespan event reached the app: a request tells us the loop
            with socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                s.recv(65536)

    @property
    def port(self) -> int:
        return self.server.port

    def open(self, trace: Trace) -> LiveClient:
        return LiveClient(self.port, trace, self.headers, self.timeout)

    def tasks(self) -> set[asyncio.Task[Any]]:
        """The tasks pending on the server's loop."""

        async def snapshot() -> set[asyncio.Task[Any]]:
            me = asyncio.current_task()
            return {t for t in asyncio.all_tasks() if t is not me}

        return self._on_loop(snapshot())

    def settle(self, baseline: set[asyncio.Task[Any]]) -> list[str]:
        """Wait (bounded) for tasks started since `baseline`; describe those still running."""
        timeout = self.timeout

        async def wait() -> list[str]:
            # closing an abandoned async generator takes a task, which may start another
            me = asyncio.current_task()
            deadline = asyncio.get_running_loop().time() + timeout
            new: list[asyncio.Task[Any]] = []
            for _ in range(8):
                new = [t for t in asyncio.all_tasks() - baseline if t is not me and not t.done()]
                left = deadline - asyncio.get_running_loop().time()
                if not new or left <= 0:
                    break
                await asyncio.wait(new, timeout=left)
            return [repr(t.get_coro()) for t in new if not t.done()]

        left = self._on_loop(wait())
        return [f"tasks left running on the server: {', '.join(left)}"] if left else []

    def _on_loop(self, coro: Any) -> Any:
        assert self.probe.loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self.probe.loop)
        return future.result(self.timeout * 2)

    def finished(self, trace: Trace) -> bool:
        """Wait (bounded) until the server is done with `trace`'s request."""
        return self.probe.wait_until(lambda: trace.app_done is not None, self.timeout)

    def stop(self) -> None:
        self.server.stop()


class LiveRunner:
    """Runs RequestBatches against the app under uvicorn, the client on raw sockets."""

    def __init__(
        self, target: Target, headers: Mapping[str, str] | None, timeout: float, validate: bool
    ) -> None:
        self.live = LiveApp(target, headers, timeout)
        self.validate = validate

    def close(self) -> None:
        self.live.stop()

    def run(self, batch: RequestBatch) -> list[tuple[Scenario | None, str]]:
        live = self.live
        probe = live.probe
        baseline = live.tasks()
        traces = [registered(probe, s, "live") for s in batch.scenarios]
        for trace in traces:
            trace.hold_final = trace.scenario.client.kind == "lost_at_end"
        clients: list[LiveClient] = []
        out: list[tuple[Scenario | None, str]] = []
        try:
            if batch.concurrent:
                clients = [live.open(t) for t in traces]
                for client in clients:
                    self._act(client)
            else:
                for trace in traces:
                    clients.append(live.open(trace))
                    self._act(clients[-1])
            for trace, client in zip(traces, clients, strict=True):
                client.close()
                if not live.finished(trace):
                    out.append(
                        (trace.scenario, f"the request did not finish within {live.timeout} s")
                    )
            out.extend((None, p) for p in live.settle(baseline))
            for trace, client in zip(traces, clients, strict=True):
                view = client.view()
                out.extend(
                    (trace.scenario, p) for p in check_request(trace, view, validate=self.validate)
                )
            out.extend((None, p) for p in check_isolation(traces))
        finally:
            for client in clients:
                client.close()
            for trace in traces:
                probe.forget(trace)
        return out

    def _act(self, client: LiveClient) -> None:
        trace = client.trace
        plan = trace.scenario.client
        if plan.kind == "read_all":
            if not client.read_until(lambda: client.complete):
                client.problems.append("the answer did not end in time")
        elif plan.kind == "close_after":
            if plan.frames:
                client.read_until(lambda: client.frames >= plan.frames)
        elif plan.kind == "never_read":
            # small answers fit in the socket buffers: the server gets to finalize
            probe = trace.probe
            probe.wait_until(lambda: bool(trace.finalize) or trace.finished, self.live.timeout)
        elif plan.kind == "lost_at_end":
            # the probe holds the last frame until this client is gone (what came before
            # it waits in the socket's buffers)
            probe = trace.probe
            probe.wait_until(lambda: trace.final_held or trace.finished, self.live.timeout)
        client.close()
