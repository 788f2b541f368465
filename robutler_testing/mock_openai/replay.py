"""Replaying a cassette: each request takes the recorded interaction it matches.

A request matches an interaction by method, path (with query) and JSON body, with the
volatile parts of the body ignored: `DEFAULT_IGNORE` (`user`, `metadata`,
`safety_identifier`, `prompt_cache_key`, the ids of input items) and the test's own
`ignore=` paths. A path is dot-separated keys from the top of the body; ``*`` stands for
any one key or list index and ``**`` for any depth, so ``"instructions"``,
``"tools.*.description"`` and ``"**.id"`` are all paths. Key order never matters (bodies
are compared as parsed JSON). Interactions are taken in recorded order among those that
match, each once.

A request that matches nothing is answered with a 500 (``x-should-retry: false``, so the
client does not retry) and fails the test, naming the nearest recorded request and the
fields that differ. Streams are replayed as streams, one SSE frame per write; with
`pacing` at the recorded times (scaled by it), by default at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .cassette import Cassette, Interaction, RecordedReply
from .http import DropConnection, send_json
from .scripting import UpstreamCall, error_body

__all__ = ["DEFAULT_IGNORE", "Player", "body_diff", "ignore_paths", "without"]

DEFAULT_IGNORE: tuple[str, ...] = (
    "user",
    "metadata",
    "safety_identifier",
    "prompt_cache_key",
    "input.*.id",
)

Report = Callable[[str], None]
Sleep = Callable[[float], Awaitable[bool]]
Path = tuple[str, ...]
_ABSENT = object()


def ignore_paths(paths: Sequence[str]) -> list[Path]:
    """Parse ignore paths (``"a.*.b"``), refusing empty segments."""
    out = []
    for path in paths:
        if not isinstance(path, str) or not path or "" in path.split("."):
            raise ValueError(
                f"ignore= takes dot-separated paths like 'tools.*.description', got {path!r}"
            )
        out.append(tuple(path.split(".")))
    return out


def _advance(path: Path, key: str) -> list[Path]:
    """What is left of `path` after stepping into `key` (empty tuple: `key` is ignored)."""
    head = path[0]
    if head == "**":
        rest = path[1:]
        return [path, *(_advance(rest, key) if rest else [()])]
    if head in ("*", key):
        return [path[1:]]
    return []


def without(value: Any, paths: list[Path]) -> Any:
    """`value` with the parts at `paths` removed."""
    if not paths or not isinstance(value, (dict, list)):
        return value
    items = value.items() if isinstance(value, dict) else enumerate(value)
    kept: list[tuple[Any, Any]] = []
    for key, child in items:
        rest = [r for p in paths for r in _advance(p, str(key))]
        if () in rest:
            continue
        kept.append((key, without(child, rest)))
    return dict(kept) if isinstance(value, dict) else [child for _, child in kept]


def body_diff(recorded: Any, now: Any, where: str = "") -> list[tuple[str, Any, Any]]:
    """Where two JSON values differ: (path, recorded, now), in document order."""
    if isinstance(recorded, dict) and isinstance(now, dict):
        out = []
        for key in [*recorded, *(k for k in now if k not in recorded)]:
            out += body_diff(
                recorded.get(key, _ABSENT),
                now.get(key, _ABSENT),
                f"{where}.{key}" if where else key,
            )
        return out
    if isinstance(recorded, list) and isinstance(now, list):
        out = []
        for index in range(max(len(recorded), len(now))):
            out += body_diff(
                recorded[index] if index < len(recorded) else _ABSENT,
                now[index] if index < len(now) else _ABSENT,
                f"{where}[{index}]",
            )
        return out
    if recorded == now and (type(recorded) is type(now) or _numbers(recorded, now)):
        return []
    return [(where or "body", recorded, now)]


def _numbers(a: Any, b: Any) -> bool:
    return all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "absent"
    text = repr(value)
    return text if len(text) <= 70 else text[:67] + "..."


class Player:
    """Serves a cassette's interactions to the requests that match them."""

    def __init__(self, cassette: Cassette, ignore: Sequence[str] = (), pacing: float = 0.0) -> None:
        self.cassette = cassette
        self.pacing = pacing
        self._ignore = ignore_paths([*DEFAULT_IGNORE, *ignore])
        self._lock = threading.Lock()
        self._keys = [without(i.request.body, self._ignore) for i in cassette.interactions]
        self._used = [False] * len(cassette.interactions)

    def take(self, method: str, target: str, body: Any) -> tuple[int, Interaction] | str:
        """The first unused interaction matching the request (marked used), or the reason
        there is none, with the difference from the nearest recorded request."""
        key = without(body, self._ignore)
        with self._lock:
            for n, interaction in enumerate(self.cassette.interactions):
                request = interaction.request
                if (
                    not self._used[n]
                    and request.method == method
                    and request.path == target
                    and not body_diff(self._keys[n], key)
                ):
                    self._used[n] = True
                    return n + 1, interaction
            return self._mismatch(method, target, key)

    def _mismatch(self, method: str, target: str, key: Any) -> str:
        where = f"{method} {target} matches no recorded interaction in {self.cassette.path}"
        if not self.cassette.interactions:
            return f"{where} (it has none)"
        scored = []
        for n, interaction in enumerate(self.cassette.interactions):
            request = interaction.request
            diffs = body_diff(self._keys[n], key)
            other = request.method != method or request.path != target
            scored.append((other, len(diffs), self._used[n], n, diffs))
        other, _, used, n, diffs = min(scored, key=lambda s: s[:4])
        nearest = self.cassette.interactions[n].request
        if other:
            return f"{where}; the nearest is interaction #{n + 1}, {nearest.describe()}"
        if not diffs:
            return (
                f"{where}: it is interaction #{n + 1}, already replayed (the request was sent "
                "more times than when the cassette was recorded)"
            )
        shown = "; ".join(f"{p}: recorded {_show(r)}, now {_show(v)}" for p, r, v in diffs[:3])
        more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
        state = ", already replayed," if used else ""
        return (
            f"{where}; the nearest, interaction #{n + 1}{state} differs at {shown}{more}. "
            "Re-record the cassette with --record, or ignore the field with "
            "@pytest.mark.mock_openai(ignore=[...])"
        )

    def pending(self) -> list[str]:
        """The interactions not replayed yet."""
        with self._lock:
            unused = [n for n, used in enumerate(self._used) if not used]
        out = []
        for n in unused:
            request = self.cassette.interactions[n].request
            text = UpstreamCall(request.method, request.path, {}, request.body).text
            hint = f" ({text[-50:]!r})" if text else ""
            out.append(f"recorded interaction #{n + 1}: {request.describe()}{hint}")
        return out

    async def serve(
        self, call: UpstreamCall, target: str, send: Any, report: Report, sleep: Sleep
    ) -> None:
        """Answer `call` with its recorded reply, or with a 500 saying why there is none."""
        found = self.take(call.method, target, call.body)
        if isinstance(found, str):
            report(found)
            error = error_body(f"mock_openai: {found}", "mock_openai_error", None)
            await send_json(send, 500, error, {"x-should-retry": "false"})
            return
        number, interaction = found
        call.reply = f"recorded interaction #{number}"
        await send_recorded(send, interaction.reply, sleep, self.pacing)


async def send_recorded(send: Any, reply: RecordedReply, sleep: Sleep, pacing: float) -> None:
    """Send a recorded reply: its body at once, or its events one write each (at the
    recorded times, scaled by `pacing`, when it is not 0)."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    if reply.events is None:
        content = reply.content
        headers.append((b"content-length", b"%d" % len(content)))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": content, "more_body": False})
        return
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    start = time.monotonic()
    times = reply.times if pacing and reply.times else None
    for index, event in enumerate(reply.events):
        if times is not None:
            wait = times[index] * pacing - (time.monotonic() - start)
            if wait > 0 and not await sleep(wait):
                raise DropConnection("mock_openai: shutting down")
        await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
