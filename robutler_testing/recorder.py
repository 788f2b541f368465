"""`FinalizeRecorder`: hooks onto a server and checks the lifecycle promises per request."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FinalizeRecorder", "RequestRecord"]


@dataclass
class RequestRecord:
    """What the recorder saw of one request."""

    request_id: str
    agent: str | None = None
    before_calls: int = 0
    finalize_calls: int = 0
    status_code: int | None = None
    streaming: bool = False
    outcome: str | None = None  # completed / disconnected / failed for streams
    error: BaseException | None = None
    context_ids: list[int] = field(default_factory=list)
    finalized_while_streaming: bool = False

    def problems(self) -> list[str]:
        out = []
        if self.finalize_calls != 1:
            out.append(f"finalize ran {self.finalize_calls} times")
        if self.before_calls > 1:  # 0 is fine: a request refused before the hooks ran
            out.append(f"before_request ran {self.before_calls} times")
        if self.finalized_while_streaming:
            out.append("finalize ran before its stream ended")
        if len(set(self.context_ids)) > 1:
            out.append("before and finalize saw different contexts")
        return out


class FinalizeRecorder:
    """Registers a before and a finalize hook on `app` and records every request.

    `assert_exactly_once()` fails with a readable message when a request had zero or
    several finalize calls, its before hook ran more than once, finalize ran before its
    stream ended, or the hooks saw different contexts. Under a live server finalize runs after the client has its
    answer: `wait_for(n)` waits (bounded) until n requests were finalized.
    """

    def __init__(self, app: Any) -> None:
        self.records: dict[str, RequestRecord] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        app.agent.before_request(self._before)
        app.agent.finalize_request(self._finalize)

    def _record(self) -> RequestRecord:
        from robutler.server import get_context

        ctx = get_context()
        if ctx is None:
            raise RuntimeError("FinalizeRecorder hook ran outside a request")
        record = self.records.get(ctx.request_id)
        if record is None:
            record = self.records[ctx.request_id] = RequestRecord(ctx.request_id, ctx.agent_name)
        record.context_ids.append(id(ctx))
        return record

    async def _before(self, request: Any) -> None:
        with self._lock:
            self._record().before_calls += 1

    async def _finalize(self, request: Any, response: Any) -> None:
        from robutler.server import StreamingWrapper, get_context

        with self._changed:
            record = self._record()
            record.finalize_calls += 1
            record.status_code = getattr(response, "status_code", None)
            ctx = get_context()
            record.error = ctx.error if ctx is not None else None
            if isinstance(response, StreamingWrapper):
                record.streaming = True
                record.outcome = response.status
                record.finalized_while_streaming = response.status == "streaming"
            self._changed.notify_all()

    @property
    def finalized(self) -> int:
        """How many requests were finalized at least once."""
        return sum(1 for r in self.records.values() if r.finalize_calls)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until `count` requests were finalized; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.finalized < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def assert_exactly_once(self, expected_requests: int | None = None) -> None:
        """Raise AssertionError describing every request that broke the lifecycle."""
        __tracebackhide__ = True
        lines = []
        if expected_requests is not None and len(self.records) != expected_requests:
            lines.append(f"expected {expected_requests} requests, recorded {len(self.records)}")
        for record in self.records.values():
            for problem in record.problems():
                lines.append(f"request {record.request_id} (agent {record.agent!r}): {problem}")
        if lines:
            raise AssertionError("lifecycle broken:\n  " + "\n  ".join(lines))

    def clear(self) -> None:
        """Forget what was recorded."""
        with self._lock:
            self.records.clear()
