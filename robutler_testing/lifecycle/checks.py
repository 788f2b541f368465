"""Invariants: what a finished request, and a set of requests, must not break.

`check_request` runs the named checks of `REQUEST_CHECKS` over one request's trace; each
returns its problems as sentences. A problem of one of the kinds below starts with the
kind's name, so a report says what sort of bug it found.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from robutler.server import StreamingWrapper

from .answers import ClientView, answer_problems, is_error_frame, prefix_problems
from .plans import (
    HANDLER_PRICE,
    HANDLER_REASON,
    STREAM_PRICE,
    STREAM_REASON,
    TOOL_PRICE,
    TOOL_REASON,
    TRACKED_REASON,
    USAGE,
    Expectation,
    HookErrors,
    Scenario,
    expect,
)
from .probe import HEADER, FinalizeMark, Mark, ProbeError, SendRecord, Trace

__all__ = [
    "REQUEST_CHECKS",
    "ClientView",
    "LifecycleViolation",
    "Request",
    "check_isolation",
    "check_request",
    "raise_if",
]

# The kinds of lifecycle bugs, as the problems name them.
CUT_SHORT = "finalize cut short"
RUN_TWICE = "a hook run twice"
OUTLIVED = "work outlived its client"
SHARED = "usage shared between requests"
CHARGES = "charges that do not match the outcome"
LAST_BYTE = "outcome untrue at the last byte"
HANG_UP = "a hang-up taken for a failure"

# A JSON answer whose body send was cut short by a disconnect must not be taken as
# completed (nor charged), and a sync generator the server stopped reading must be closed
# at once (its `finally` must not wait for the garbage collector). robutler does both;
# set these to False to check a server that does not.
STRICT_CUT_JSON = True
STRICT_SYNC_GENERATORS = True


class LifecycleViolation(AssertionError):
    """A server broke a lifecycle guarantee; the message names the scenario and each problem."""


@dataclass
class Request:
    """One request's trace with what the checks derive from it once."""

    trace: Trace
    client: ClientView | None
    finished: bool
    validate: bool
    hook_errors: HookErrors
    e: Expectation

    @classmethod
    def of(cls, trace: Trace, client: ClientView | None, finished: bool, validate: bool) -> Request:
        mode = hook_errors_of(trace)
        return cls(trace, client, finished, validate, mode, expect(trace.scenario, mode))

    @property
    def scenario(self) -> Scenario:
        return self.trace.scenario

    @property
    def fin(self) -> FinalizeMark | None:
        return self.trace.finalize[0] if self.trace.finalize else None

    @property
    def client_stayed(self) -> bool:
        """The client read the whole answer."""
        return self.client is not None and self.client.complete and not self.client.left

    @property
    def before_body(self) -> bool:
        """A front-door request that ended before a valid body was read: the front door
        reads the body first (it names the agent), so no before hook may have run, and
        the context may not know the agent's name."""
        t = self.trace
        return self.scenario.front_door and (t.body_read is None or self.scenario.bad_body)

    @property
    def hook_raised(self) -> bool:
        return any(h.action == "raise" for h in self.scenario.before)


def hook_errors_of(trace: Trace) -> HookErrors:
    """What the server did with a before hook that raised: the request went on after it
    ("continue", the error logged) or it was answered with a 500 ("reject")."""
    hooks = trace.scenario.before
    first = next((i for i, h in enumerate(hooks) if h.action == "raise"), None)
    if first is None or any(h.action == "reject" for h in hooks[:first]):
        return "reject"
    if trace.scenario.front_door and not trace.before:
        return "reject"  # the request ended before the hooks (the body first): no telling
    went_on = any(trace.before_slots[j] for j in range(first + 1, len(hooks)))
    if went_on or trace.resolver or trace.agent:
        return "continue"
    return "reject" if trace.handed_start() in (500, None) else "continue"


# --------------------------------------------------------------------------------------
# The named checks of one request


def finalize_ran_once(r: Request) -> list[str]:
    """Finalize runs exactly once for a request the app finished, and the app is sound."""
    t = r.trace
    out = []
    n = max(len(t.finalize), len(t.finalize_end))
    if n > 1:
        out.append(f"{RUN_TWICE}: finalize ran {n} times")
    if r.finished:
        if t.app_calls != 1:
            out.append(f"the server saw the request {t.app_calls} times")
        if not t.finalize:
            out.append("finalize never ran")
        elif not t.finalize_end:
            out.append(f"{CUT_SHORT}: the last finalize hook never ran")
    if isinstance(t.app_error, asyncio.CancelledError):
        if not t.host_cancelled:
            out.append("the app raised CancelledError, though nobody cancelled the request")
    elif t.app_error is not None:
        out.append(f"the app raised {t.app_error!r}")
    return out


def before_hooks_ran(r: Request) -> list[str]:
    """Each before hook runs as often as the scenario says (once, or not after a hook that
    stopped the request), and finishes, unless the host cancelled the request (its client
    had gone) while it waited: work stops when its client leaves. (Finalize hooks, on the
    other hand, always finish.)"""
    t = r.trace
    if not (r.finished or t.agent or t.finalize):
        return []
    out = []
    # the host may have stopped the request anywhere; a front door without a valid body
    # runs no hook at all (checked below)
    cut = t.host_cancelled or r.before_body
    if len(t.before) > 1 or (len(t.before) != 1 and not cut):
        out.append(
            f"the first before hook ran {len(t.before)} times (if 0: did the app reject "
            "the request before the probe's hooks? pass headers=)"
        )
    if r.before_body and t.before:
        out.append("a before hook ran although the front door had no valid body yet")
    for i, want in enumerate(r.e.before_runs):
        got = len(t.before_slots[i])
        if got > want or (got < want and not cut):
            kind = f"{RUN_TWICE}: " if got > want else ""
            out.append(f"{kind}before hook {i + 1} ran {got} times, expected {want}")
        elif len(t.before_ends[i]) != got and not t.host_cancelled:
            out.append(f"before hook {i + 1} started but never finished")
    return out


def finalize_hooks_ran(r: Request) -> list[str]:
    """Each finalize hook runs once and finishes, also when hooks wait or raise and the
    request is cancelled meanwhile, and all of them before the app returns."""
    t = r.trace
    out = []
    done = bool(t.finalize_end)
    for i, starts in enumerate(t.finalize_slots):
        if len(starts) > 1:
            out.append(f"{RUN_TWICE}: finalize hook {i + 1} ran {len(starts)} times")
        elif done and not starts:
            out.append(f"finalize hook {i + 1} never ran")
        if len(t.finalize_ends[i]) < len(starts):
            out.append(f"{CUT_SHORT}: finalize hook {i + 1} started but never finished")
    if t.app_done is not None:
        ends = [*(m for group in t.finalize_ends for m in group), *t.finalize_end]
        if any(m.seq > t.app_done for m in ends):
            out.append(f"{CUT_SHORT}: the app returned while finalize hooks were still running")
    return out


def resolver_and_agent_ran(r: Request) -> list[str]:
    """The resolver and the agent run at most once, and only when the request gets there."""
    t, e = r.trace, r.e
    out = []
    if len(t.resolver) > 1 or len(t.resolver) > e.resolver_runs:
        out.append(f"the resolver ran {len(t.resolver)} times, expected {e.resolver_runs}")
    if len(t.agent) > 1:
        out.append(f"the agent ran {len(t.agent)} times")
    if t.agent and not e.agent_runs:
        out.append("the agent ran although the request should have stopped before it")
    if r.finished and r.client_stayed and e.agent_runs and not t.agent:
        out.append("the agent never ran")
    if r.finished and r.client_stayed and e.resolver_runs and not t.resolver:
        out.append("the resolver never ran")
    if t.agent and r.scenario.route == "dynamic" and t.agent_data != [{"token": t.token}]:
        out.append(f"the agent got agent_data {t.agent_data!r}")
    return out


def _context_marks(t: Trace) -> list[tuple[str, Any]]:
    groups: tuple[tuple[str, list[Sequence[Mark]]], ...] = (
        ("a before hook", [t.before, *t.before_slots]),
        ("the resolver", [t.resolver]),
        ("the agent", [t.agent]),
        ("a task the agent spawned", [t.spawned]),
        ("the agent's stream", [t.pieces]),
        ("finalize", [t.finalize, *t.finalize_slots, t.finalize_end]),
    )
    return [(name, m.ctx) for name, marks in groups for group in marks for m in group]


def one_context(r: Request) -> list[str]:
    """Every context the probe saw for the request is one RequestState."""
    seen = _context_marks(r.trace)
    out = [f"{name} ran without a context (get_context() was None)" for name, c in seen if not c]
    contexts = [c for _, c in seen if c is not None]
    first = contexts[0] if contexts else None
    for name, ctx in seen:
        if ctx is not None and ctx is not first:
            out.append(f"{name} saw a different context than the first hook ({ctx!r} vs {first!r})")
            break
    return out


def own_context(r: Request) -> list[str]:
    """The request's context is its own: its token, agent, stream flag and messages."""
    t = r.trace
    contexts = [c for _, c in _context_marks(t) if c is not None]
    out = []
    fin = r.fin
    if fin is not None and fin.age is not None and fin.age > fin.request_age + 0.001:
        out.append(
            f"the context began {fin.age - fin.request_age:.3f} s before the request was "
            "sent: it is an earlier request's"
        )
    if not contexts:
        return out
    first = contexts[0]
    headers = getattr(getattr(first, "request", None), "headers", None)
    token = headers.get(HEADER) if headers is not None else None
    if token != t.token:
        out.append(f"the context belongs to another request (probe token {token!r})")
    named = getattr(first, "agent_name", None)
    if named != t.agent_name and not (r.before_body and named is None):
        out.append(
            f"the context names agent {getattr(first, 'agent_name', None)!r}, not {t.agent_name!r}"
        )
    if t.agent:
        if getattr(first, "stream", None) is not r.scenario.stream:
            out.append(f"the context says stream={getattr(first, 'stream', None)!r}")
        messages = getattr(first, "messages", None) or [{}]
        if t.token not in str(messages[-1].get("content")):
            out.append("the context holds another request's messages")
    return out


def context_error(r: Request) -> list[str]:
    """A request that succeeded has no error in its context; one that failed has one."""
    fin = r.fin
    if fin is None or not (r.finished and r.client_stayed) or fin.ctx is None:
        return []
    if r.hook_raised and r.hook_errors == "continue":
        return []  # whether a logged hook error is kept in the context is the server's call
    error = getattr(fin.ctx, "error", None)
    if r.e.status == 200 and not r.e.agent_fails and error is not None:
        return [f"the request succeeded but its context holds error {error!r}"]
    if r.e.status != 200 and error is None:
        return [f"the request failed with {r.e.status} but its context has no error"]
    return []


def finalize_comes_last(r: Request) -> list[str]:
    """Finalize starts after the last byte was handed over and the agent stopped."""
    t, fin = r.trace, r.fin
    if fin is None:
        return []
    out = []
    for record in t.sends:
        what = record.message.get("type")
        if record.seq_in > fin.seq:
            out.append(f"the server sent {what} after finalize started")
            break
        if record.seq_out is None or record.seq_out > fin.seq:
            out.append(f"finalize started while the server was still sending {what}")
            break
    if any(m.seq > fin.seq for m in (*t.agent, *t.pieces, *t.spawned)):
        out.append("the agent was still producing after finalize started")
    if any(m.seq < fin.seq for group in t.finalize_slots for m in group):
        out.append("a finalize hook ran before the first one")
    return out


def before_hooks_come_first(r: Request) -> list[str]:
    """The before hooks run first, and all of them before the resolver and the agent."""
    t = r.trace
    out = []
    if t.before:
        start = t.before[0].seq
        later = [*t.resolver, *t.agent, *t.pieces, *(m for g in t.before_slots for m in g)]
        if any(m.seq < start for m in later):
            out.append("something ran before the first before hook")
        if t.sends and t.sends[0].seq_in < start:
            out.append("the server answered before the before hooks ran")
        if r.scenario.front_door and (t.body_read is None or t.body_read > start):
            out.append("the before hooks ran before the front door read the body")
    if t.agent:
        agent_at = t.agent[0].seq
        if any(m.seq > agent_at for g in t.before_slots for m in g):
            out.append("a before hook ran after the agent started")
        if any(m.seq > agent_at for m in t.resolver):
            out.append("the resolver ran after the agent started")
    return out


def _stream_facts(r: Request) -> tuple[str | None, bool, bool, list[SendRecord]] | None:
    """For a stream: the wrapper's status, whether the final frame was handed over, and
    reached the client, and the error frames; None when finalize got no wrapper."""
    fin = r.fin
    if fin is None or not isinstance(fin.response, StreamingWrapper):
        return None
    final = [rec for rec in r.trace.sends if rec.final]
    sent = any(rec.ok for rec in final)
    delivered = any(rec.ok and not rec.lost for rec in final)
    errors = [rec for rec in r.trace.sends if rec.is_body and is_error_frame(rec.body)]
    return fin.wrapper_status, sent, delivered, errors


def stream_completed_is_true(r: Request) -> list[str]:
    """A StreamingWrapper says 'completed' only when the final frame reached the client,
    and a stream whose final frame did says so."""
    facts = _stream_facts(r)
    if facts is None:
        return []
    status, sent, delivered, errors = facts
    if status not in ("completed", "disconnected", "failed"):
        return [f"finalize ran while the stream was still {status!r}"]
    out = []
    if status == "completed" and (not sent or errors):
        what = "sent an error event" if errors else "never finished sending"
        out.append(f"{LAST_BYTE}: finalize was told 'completed' but the server {what}")
    elif status == "completed" and not delivered and r.scenario.client.kind == "lost_at_end":
        out.append(
            f"{LAST_BYTE}: finalize was told 'completed' but the client hung up while the "
            "last frame was being sent"
        )
    if delivered and not errors and status != "completed":
        out.append(f"{LAST_BYTE}: the whole stream was sent but finalize was told {status!r}")
    return out


def stream_end_is_true(r: Request) -> list[str]:
    """'failed' comes with its error event and its error; 'disconnected' with a final
    frame that never reached the client; the wrapper counts what was handed over."""
    facts = _stream_facts(r)
    fin = r.fin
    if facts is None or fin is None:
        return []
    status, _, delivered, errors = facts
    out = []
    if status == "failed" and not errors:
        out.append("finalize was told 'failed' but no error event was sent")
    if status == "failed" and fin.error is None:
        out.append("finalize was told 'failed' without the error")
    if status == "disconnected" and delivered:
        out.append(f"{LAST_BYTE}: finalize was told 'disconnected' but the whole stream was sent")
    return out + _wrapper_counts(r.trace, fin, errors)


def _wrapper_counts(t: Trace, fin: FinalizeMark, errors: list[SendRecord]) -> list[str]:
    out = []
    skip = {id(rec) for rec in errors}
    handed = sum(len(rec.body) for rec in t.sends if id(rec) not in skip)
    if fin.bytes_sent is not None and fin.bytes_sent != handed:
        out.append(
            f"{LAST_BYTE}: the wrapper counts {fin.bytes_sent} bytes sent, "
            f"the server was handed {handed}"
        )
    start = t.handed_start()
    if start is not None and start != fin.status_code:
        out.append(f"the wrapper says status {fin.status_code}, the answer had {start}")
    return out


def response_status_is_true(r: Request) -> list[str]:
    """A plain response given to finalize has the status the client was sent (499 when
    none was), and is not given for a stream."""
    t, fin = r.trace, r.fin
    if fin is None or isinstance(fin.response, StreamingWrapper):
        return []
    start = t.handed_start()
    expected = start if start is not None else 499
    if fin.status_code != expected:
        return [
            f"{LAST_BYTE}: finalize got a response with status {fin.status_code}, but the "
            f"server was handed {start if start is not None else 'no answer'}"
        ]
    first = t.sends[0] if t.sends else None
    if start == 200 and first is not None and "text/event-stream" in _content_type(first):
        return ["a stream was sent but finalize did not get a StreamingWrapper"]
    return []


def response_is_what_the_client_got(r: Request) -> list[str]:
    """A plain response given to finalize carries the headers the client got and, once
    the whole answer was handed over, its body: not a placeholder."""
    t, fin = r.trace, r.fin
    if fin is None or isinstance(fin.response, StreamingWrapper) or not t.sends:
        return []
    out = []
    handed = {(bytes(k).lower(), bytes(v)) for k, v in t.sends[0].message.get("headers") or ()}
    for key, value in fin.headers:
        if (bytes(key).lower(), bytes(value)) not in handed:
            out.append(
                f"{LAST_BYTE}: finalize's response has header {bytes(key).decode()}: "
                f"{bytes(value).decode()}, which the client did not get"
            )
    delivered = any(rec.final and rec.ok and not rec.lost for rec in t.sends)
    body = t.accepted_body()
    if delivered and fin.body != body:
        got = "no body" if fin.body is None else f"a body of {len(fin.body)} bytes"
        out.append(
            f"{LAST_BYTE}: finalize got a response with {got}, the client got {len(body)} bytes"
        )
    return out


def _content_type(record: SendRecord) -> str:
    for key, value in record.message.get("headers") or ():
        if bytes(key).lower() == b"content-type":
            return bytes(value).decode("latin-1")
    return ""


def expected_final_status(r: Request) -> list[str]:
    """A client that read everything leaves finalize with the status its scenario gives."""
    fin, want = r.fin, r.e.final_status
    if fin is None or want is None or not (r.finished and r.client_stayed):
        return []
    if fin.wrapper_status != want:
        return [f"finalize was told {fin.wrapper_status!r}, expected {want!r}"]
    return []


def work_stopped(r: Request) -> list[str]:
    """Once the client has left (or the host cancelled the request), the agent, the tasks
    it spawned and its stream stop; their `finally` runs before the request ends."""
    t = r.trace
    out = [f"{OUTLIVED}: {what}" for what in t.outlived]
    if not r.finished or t.app_done is None:
        return out
    if len(t.spawned_exit) < len(t.spawned):
        out.append(f"{OUTLIVED}: a task the agent spawned never finished")
    elif any(m.seq > t.app_done for m in t.spawned_exit):
        out.append(f"{OUTLIVED}: a task the agent spawned was still running when the request ended")
    if len(t.agent_exit) < len(t.agent):
        out.append(f"{OUTLIVED}: the agent's call never finished (its finally did not run)")
    out += _busy_work_stopped(r)
    sync = r.scenario.agent.form == "sync_gen"
    if t.stream_started and not t.stream_exit and (STRICT_SYNC_GENERATORS or not sync):
        out.append(f"{OUTLIVED}: the agent's stream was never closed (its finally did not run)")
    elif not sync and t.finalize and any(m.seq > t.finalize[0].seq for m in t.stream_exit):
        # An async stream the server stopped reading must be closed by the server before
        # finalize, not left to the garbage collector (which runs its finally some time
        # later, while or after finalize hooks look at the outcome). A sync generator may
        # still be inside `next` in a worker thread: it can only close when that returns.
        out.append(
            f"{OUTLIVED}: the agent's stream was closed only after finalize had started "
            "(left to the garbage collector)"
        )
    return out


# An agent that never awaits may be read this many pieces past its client's leaving: a
# server has to give the event loop a turn now and then to hear of it (robutler: every 16).
BUSY_PIECES = 64


def _busy_work_stopped(r: Request) -> list[str]:
    """Work that never waits of its own accord stops too once the server knows the client
    has gone: a stream that never awaits, a task the agent started and never awaited."""
    t, a = r.trace, r.scenario.agent
    out = []
    if a.form == "busy" and t.left.seq is not None:
        after = sum(1 for m in t.pieces if m.seq > (t.left.seq or 0))
        if after > BUSY_PIECES:
            out.append(
                f"{OUTLIVED}: an agent that never awaits was read for {after} more pieces "
                "after its client left (the server gave the event loop no turn to hear it)"
            )
    knew = t.host_cancelled or (
        r.fin is not None and (r.fin.wrapper_status == "disconnected" or r.fin.status_code == 499)
    )
    if a.background and t.background and knew and t.background_end != "cancelled":
        out.append(
            f"{OUTLIVED}: a task the agent started and never awaited ran on after the server "
            f"knew its client had gone ({t.background_end or 'still running'})"
        )
    return out


def _records(usage: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [rec for rec in (usage or {}).get("records") or () if isinstance(rec, dict)]


def usage_kept_apart(r: Request) -> list[str]:
    """The usage finalize sees holds this request's records only, each once."""
    t = r.trace
    if t.usage_at_end is None:
        return []
    records = _records(t.usage_at_end)
    out = []
    ids = [rec.get("id") for rec in records]
    for rid in sorted({i for i in ids if ids.count(i) > 1}, key=str):
        out.append(f"{SHARED}: usage record {rid} appears {ids.count(rid)} times")
    foreign = [
        rec
        for rec in records
        if rec.get("reason") == TRACKED_REASON
        and (rec.get("metadata") or {}).get("probe") != t.token
    ]
    if foreign:
        out.append(f"{SHARED}: the usage holds {len(foreign)} record(s) of another request")
    by_id = {rec.get("id"): rec for rec in records}
    for rid, amount in t.tracked:
        if rid not in by_id or by_id[rid].get("credits") != amount:
            out.append(
                f"{SHARED}: the record {rid} this request tracked ({amount} credits) "
                "is not in its usage"
            )
    return out


def usage_adds_up(r: Request) -> list[str]:
    """The usage's total_credits is the sum of its records."""
    usage = r.trace.usage_at_end
    if usage is None:
        return []
    total = sum(float(rec.get("credits") or 0) for rec in _records(usage))
    if abs(total - float(usage.get("total_credits") or 0)) > 1e-9:
        return [
            f"{SHARED}: total_credits is {usage.get('total_credits')!r} but its records "
            f"add up to {total:g}"
        ]
    return []


def _completed(r: Request) -> bool:
    """Did the request complete, as far as charging goes?"""
    fin = r.fin
    assert fin is not None
    if isinstance(fin.response, StreamingWrapper):
        return fin.wrapper_status == "completed"
    if fin.status_code is None or fin.status_code >= 400:
        return False
    final = [rec for rec in r.trace.sends if rec.final]
    return not STRICT_CUT_JSON or any(rec.ok and not rec.lost for rec in final)


def charges_match(r: Request) -> list[str]:
    """`@pricing` charges: per request and per token only for a completed request, per
    call once for each call that returned."""
    t = r.trace
    usage = t.usage_at_end
    if usage is None or r.fin is None:
        return []
    completed = _completed(r)
    tokens = USAGE["total_tokens"] if r.e.agent_usage else 0
    per_request = HANDLER_PRICE["credits_per_request"] + HANDLER_PRICE["credits_per_token"] * tokens
    handler_charge = min(per_request, HANDLER_PRICE["max_credits"])
    priced = r.scenario.priced and bool(t.agent)
    outcome = "completed" if completed else "did not complete"
    wanted = [
        (
            "the priced handler's per-request charge",
            HANDLER_REASON,
            "per_request",
            [handler_charge] if priced and completed else [],
            f"the request {outcome}",
        ),
        (
            "a per-call charge of the priced handler",
            HANDLER_REASON,
            "per_call",
            [],
            "its credits_per_call is 0",
        ),
        (
            "the tool's per-call charge",
            TOOL_REASON,
            "per_call",
            [TOOL_PRICE["credits_per_call"]] * t.tool_ok,
            f"{t.tool_ok} call(s) returned",
        ),
        (
            "the tool's per-request charge",
            TOOL_REASON,
            "per_request",
            [TOOL_PRICE["credits_per_request"]] if t.tool_calls and completed else [],
            f"the request {outcome}",
        ),
        (
            "the stream's per-call charge",
            STREAM_REASON,
            "per_call",
            [STREAM_PRICE["credits_per_call"]] * len(t.stream_done),
            "the stream " + ("ran to its end" if t.stream_done else "did not run to its end"),
        ),
    ]
    records = _records(usage)
    out = []
    for what, reason, how, want, why in wanted:
        got = sorted(
            float(rec.get("credits") or 0)
            for rec in records
            if rec.get("reason") == reason and (rec.get("metadata") or {}).get("pricing") == how
        )
        if got != sorted(want):
            out.append(f"{CHARGES}: {what} was recorded as {got!r}, expected {want!r} ({why})")
    return out


def hang_up_is_no_failure(r: Request) -> list[str]:
    """A client that hangs up before its body is read, or while the agent is still at work
    before answering, is finalized as a disconnect: no 5xx, no error logged."""
    t, fin = r.trace, r.fin
    if fin is None or not _hung_up_early(r):
        return []
    out = []
    if isinstance(fin.response, StreamingWrapper):
        if fin.wrapper_status != "disconnected":
            out.append(
                f"{HANG_UP}: the client left early, but finalize was told {fin.wrapper_status!r}"
            )
    elif fin.status_code != 499:
        out.append(
            f"{HANG_UP}: the client left before the answer, but finalize got status {fin.status_code}"
        )
    start = t.handed_start()
    if start is not None and start >= 500:
        out.append(f"{HANG_UP}: the server answered {start} to a client that had left")
    return out


def _hung_up_early(r: Request) -> bool:
    """The client left before its body was read, or while the agent was at work before
    answering, in a scenario where nothing else fails (so a disconnect is the outcome)."""
    t, s = r.trace, r.scenario
    if t.left.seq is None or r.e.agent_fails or s.route == "unknown" or s.bad_body:
        return False
    if any(h.action in ("raise", "reject") for h in s.before):
        return False
    first_send = t.sends[0].seq_in if t.sends else None
    stalled_early = bool(t.stalls) and (first_send is None or t.stalls[0].seq < first_send)
    if stalled_early:
        return True
    # with the body read, the server could not know the client had gone; with the answer
    # on its way (e.g. a 401 before the body is read), the client left after it
    return t.body_read is None and (first_send is None or first_send > t.left.seq)


def errors_logged(r: Request) -> list[str]:
    """robutler logs an error only for a failure the scenario has: an agent that fails, a
    hook that raises."""
    out = []
    hooks_raise = r.hook_raised or any(h.action == "raise" for h in r.scenario.finalize)
    for message, exc in r.trace.logs:
        if r.e.agent_fails:
            continue
        if isinstance(exc, ProbeError) and "hook" in str(exc):
            continue
        if hooks_raise and exc is None and "hook" in message:
            continue
        kind = f"{HANG_UP}: " if r.trace.left.is_set() else ""
        cause = f" ({exc!r})" if exc is not None else ""
        out.append(
            f"{kind}the server logged an error for a request that did not fail: {message[:200]!r}{cause}"
        )
    return out


def client_got_what_was_sent(r: Request) -> list[str]:
    """The client got what the server sent, and (when it read everything) the answer its
    scenario gives."""
    client, t = r.client, r.trace
    if client is None:
        return []
    out = list(client.problems)
    if not t.accepted_body().startswith(client.body):
        out.append("the client received bytes the server never sent")
    start = t.handed_start()
    if client.status is not None and client.status != start:
        out.append(f"the client got HTTP {client.status}, the server sent {start}")
    if client.complete and r.finished:
        return out + answer_problems(t, r.e, client, r.validate)
    return out + prefix_problems(t, r.e, client)


REQUEST_CHECKS: tuple[Callable[[Request], list[str]], ...] = (
    finalize_ran_once,
    before_hooks_ran,
    finalize_hooks_ran,
    resolver_and_agent_ran,
    one_context,
    own_context,
    context_error,
    finalize_comes_last,
    before_hooks_come_first,
    stream_completed_is_true,
    stream_end_is_true,
    response_status_is_true,
    response_is_what_the_client_got,
    expected_final_status,
    work_stopped,
    usage_kept_apart,
    usage_adds_up,
    charges_match,
    hang_up_is_no_failure,
    errors_logged,
    client_got_what_was_sent,
)


def check_request(
    trace: Trace,
    client: ClientView | None = None,
    *,
    finished: bool = True,
    validate: bool = True,
) -> list[str]:
    """The lifecycle problems of one request, as sentences (empty: all good).

    `finished`: the request is over (the app returned), so finalize must have run once.
    `client`: what the client got; with `client.complete` the answer must match the
    scenario exactly, otherwise it must be a prefix of what the server sent.
    """
    with trace.probe.lock:
        request = Request.of(trace, client, finished, validate)
        return [problem for check in REQUEST_CHECKS for problem in check(request)]


def check_isolation(traces: Sequence[Trace]) -> list[str]:
    """Requests never share a context, a request id, nor a usage record."""
    out: list[str] = []
    owners: dict[int, int] = {}
    ids: dict[str, int] = {}
    records: dict[Any, int] = {}
    for i, trace in enumerate(traces, 1):
        with trace.probe.lock:
            marks = [*trace.before, *trace.agent, *trace.finalize]
            usage = trace.usage_at_end
        contexts = {id(m.ctx): m.ctx for m in marks if m.ctx is not None}
        for key, ctx in contexts.items():
            if key in owners and owners[key] != i:
                out.append(f"requests {owners[key]} and {i} share one context {ctx!r}")
            owners.setdefault(key, i)
            rid = getattr(ctx, "request_id", None)
            if isinstance(rid, str):
                if rid in ids and ids[rid] != i:
                    out.append(f"requests {ids[rid]} and {i} share request id {rid}")
                ids.setdefault(rid, i)
        for rec in _records(usage):
            record_id = rec.get("id")
            if record_id is not None and records.setdefault(record_id, i) != i:
                out.append(
                    f"{SHARED}: requests {records[record_id]} and {i} both hold usage record {record_id}"
                )
    return out


def raise_if(problems: Sequence[tuple[Scenario | None, str]], title: str) -> None:
    """Raise LifecycleViolation listing `problems` under their scenarios, if there are any."""
    if not problems:
        return
    lines = [title]
    last: Scenario | None = None
    for scenario, problem in problems:
        if scenario is not None and scenario is not last:
            lines.append(f"- {scenario.describe()}:")
            last = scenario
        lines.append(f"    * {problem}")
    raise LifecycleViolation("\n".join(lines))
