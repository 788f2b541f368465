"""Invariants: what a finished request, and a set of requests, must not break."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from robutler.server import StreamingWrapper

from .plans import Expectation, Scenario, expect
from .probe import HEADER, FinalizeMark, Mark, SendRecord, Trace


class LifecycleViolation(AssertionError):
    """A server broke a lifecycle guarantee; the message names the scenario and each problem."""


# --------------------------------------------------------------------------------------
# Invariants


@dataclass
class ClientView:
    """What the client got: status, headers, body bytes; whether it read the whole answer
    (`complete`) or went away before its end (`left`)."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    complete: bool = False
    left: bool = False
    problems: list[str] = field(default_factory=list)


@dataclass
class _Folded:
    content: str = ""
    finish: str | None = None
    tools: dict[int, list[str]] = field(default_factory=dict)
    usage: Any = None
    error: Any = None
    done: bool = False
    ids: set[str] = field(default_factory=set)


def _fold_sse(body: bytes, problems: list[str]) -> _Folded:
    """Fold the complete `data:` events of an SSE body."""
    out = _Folded()
    text = body.decode("utf-8", "replace")
    blocks = text.split("\n\n")[:-1]
    for i, block in enumerate(blocks):
        if out.done:
            problems.append(f"event {i} comes after data: [DONE]")
            break
        if not block.startswith("data: "):
            problems.append(f"event {i} is not a data event: {block[:60]!r}")
            continue
        payload = block[len("data: ") :]
        if payload == "[DONE]":
            out.done = True
            continue
        try:
            event = json.loads(payload)
        except ValueError:
            problems.append(f"event {i} is not JSON: {payload[:60]!r}")
            continue
        if "error" in event:
            out.error = event["error"]
            continue
        if event.get("id"):
            out.ids.add(event["id"])
        if event.get("usage"):
            out.usage = event["usage"]
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out.content += delta["content"]
            for call in delta.get("tool_calls") or ():
                slot = out.tools.setdefault(call.get("index", 0), ["", ""])
                fn = call.get("function") or {}
                slot[0] += fn.get("name") or ""
                slot[1] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                out.finish = choice["finish_reason"]
    return out


def _ctx_problems(trace: Trace) -> list[str]:
    """Every context the probe saw for `trace` is one RequestState, this request's own."""
    out: list[str] = []
    seen: list[tuple[str, Any]] = []
    groups: tuple[tuple[str, list[Sequence[Mark]]], ...] = (
        ("a before hook", [trace.before, *trace.before_slots]),
        ("the resolver", [trace.resolver]),
        ("the agent", [trace.agent]),
        ("a task the agent spawned", [trace.spawned]),
        ("the agent's stream", [trace.pieces]),
        ("finalize", [trace.finalize, *trace.finalize_slots, trace.finalize_end]),
    )
    for name, marks in groups:
        for group in marks:
            seen.extend((name, m.ctx) for m in group)
    if not seen:
        return out
    for name, ctx in seen:
        if ctx is None:
            out.append(f"{name} ran without a context (get_context() was None)")
    contexts = [c for _, c in seen if c is not None]
    first = contexts[0] if contexts else None
    for name, ctx in seen:
        if ctx is not None and ctx is not first:
            out.append(f"{name} saw a different context than the first hook ({ctx!r} vs {first!r})")
            break
    fin = trace.finalize[0] if trace.finalize else None
    if fin is not None and fin.age is not None and fin.age > fin.request_age + 0.001:
        out.append(
            f"the context began {fin.age - fin.request_age:.3f} s before the request was "
            "sent: it is an earlier request's"
        )
    if first is not None:
        request = getattr(first, "request", None)
        headers = getattr(request, "headers", None)
        token = headers.get(HEADER) if headers is not None else None
        if token != trace.token:
            out.append(f"the context belongs to another request (probe token {token!r})")
        if getattr(first, "agent_name", None) != trace.agent_name:
            out.append(
                f"the context names agent {getattr(first, 'agent_name', None)!r}, "
                f"not {trace.agent_name!r}"
            )
        if trace.agent:
            if getattr(first, "stream", None) is not trace.scenario.stream:
                out.append(f"the context says stream={getattr(first, 'stream', None)!r}")
            messages = getattr(first, "messages", None) or [{}]
            if trace.token not in str(messages[-1].get("content")):
                out.append("the context holds another request's messages")
    return out


def _order_problems(trace: Trace) -> list[str]:
    out: list[str] = []
    fin = trace.finalize[0] if trace.finalize else None
    if fin is not None:
        for record in trace.sends:
            what = record.message.get("type")
            if record.seq_in > fin.seq:
                out.append(f"the server sent {what} after finalize started")
                break
            if record.seq_out is None or record.seq_out > fin.seq:
                out.append(f"finalize started while the server was still sending {what}")
                break
        late = [m for m in (*trace.agent, *trace.pieces, *trace.spawned) if m.seq > fin.seq]
        if late:
            out.append("the agent was still producing after finalize started")
        if any(m.seq < fin.seq for group in trace.finalize_slots for m in group):
            out.append("a finalize hook ran before the first one")
    if trace.before:
        start = trace.before[0].seq
        later = [
            *trace.resolver,
            *trace.agent,
            *trace.pieces,
            *(m for group in trace.before_slots for m in group),
        ]
        if any(m.seq < start for m in later):
            out.append("something ran before the first before hook")
        if trace.sends and trace.sends[0].seq_in < start:
            out.append("the server answered before the before hooks ran")
    if trace.agent:
        agent_at = trace.agent[0].seq
        for group in trace.before_slots:
            if any(m.seq > agent_at for m in group):
                out.append("a before hook ran after the agent started")
                break
        if any(m.seq > agent_at for m in trace.resolver):
            out.append("the resolver ran after the agent started")
    return out


def _truth_problems(trace: Trace, fin: FinalizeMark) -> list[str]:
    """Does what finalize got tell the truth about what was sent?"""
    out: list[str] = []
    sends = trace.sends
    final_ok = any(r.final and r.ok for r in sends)
    error_frames = [r for r in sends if r.is_body and b'data: {"error"' in r.body]
    if isinstance(fin.response, StreamingWrapper):
        status = fin.wrapper_status
        if status not in ("completed", "disconnected", "failed"):
            return [f"finalize ran while the stream was still {status!r}"]
        if status == "completed" and (not final_ok or error_frames):
            what = "sent an error event" if error_frames else "never finished sending"
            out.append(f"finalize was told 'completed' but the server {what}")
        if status == "failed":
            if not error_frames:
                out.append("finalize was told 'failed' but no error event was sent")
            if fin.error is None:
                out.append("finalize was told 'failed' without the error")
        if status == "disconnected" and final_ok:
            out.append("finalize was told 'disconnected' but the whole stream was sent")
        if final_ok and not error_frames and status != "completed":
            out.append(f"the whole stream was sent but finalize was told {status!r}")
        skip = {id(r) for r in error_frames}
        handed = sum(len(r.body) for r in sends if id(r) not in skip)
        if fin.bytes_sent is not None and fin.bytes_sent != handed:
            out.append(
                f"the wrapper counts {fin.bytes_sent} bytes sent, the server was handed {handed}"
            )
        start = trace.handed_start()
        if start is not None and start != fin.status_code:
            out.append(f"the wrapper says status {fin.status_code}, the answer had {start}")
    else:
        start = trace.handed_start()
        expected = start if start is not None else 499
        if fin.status_code != expected:
            out.append(
                f"finalize got a response with status {fin.status_code}, "
                f"but the server was handed {start if start is not None else 'no answer'}"
            )
        if start == 200 and trace.sends and "text/event-stream" in _content_type(trace.sends[0]):
            out.append("a stream was sent but finalize did not get a StreamingWrapper")
    return out


def _content_type(record: SendRecord) -> str:
    for key, value in record.message.get("headers") or ():
        if bytes(key).lower() == b"content-type":
            return bytes(value).decode("latin-1")
    return ""


def _answer_problems(trace: Trace, e: Expectation, client: ClientView, validate: bool) -> list[str]:
    """The whole answer the client read matches the scenario."""
    out: list[str] = []
    if client.status != e.status:
        return [f"expected HTTP {e.status}, got {client.status}: {client.body[:200]!r}"]
    ctx = trace.finalize[0].ctx if trace.finalize else None
    rid = client.headers.get("x-request-id")
    if ctx is not None and rid != getattr(ctx, "request_id", None):
        out.append(f"x-request-id {rid!r} is not the request id of finalize's context")
    if e.status != 200:
        try:
            err = json.loads(client.body)["error"]
            assert isinstance(err["message"], str) and "type" in err and "code" in err
        except (ValueError, KeyError, TypeError, AssertionError):
            return [*out, f"the error body is not OpenAI-shaped: {client.body[:200]!r}"]
        if e.message_has and e.message_has not in err["message"]:
            out.append(f"the error message does not name {e.message_has}: {err['message']!r}")
        failing = next((h for h in trace.scenario.before if h.action != "ok"), None)
        if failing is not None and failing.action == "reject":
            want = f"rejected by before hook {trace.scenario.before.index(failing) + 1}"
            if err["message"] != want:
                out.append(f"the rejection message is {err['message']!r}, not {want!r}")
        return out
    if not e.streamed:
        try:
            body = json.loads(client.body)
            message = body["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            return [*out, f"not a chat.completion: {client.body[:200]!r}"]
        if message.get("content") != e.content:
            out.append(f"content {message.get('content')!r}, expected {e.content!r}")
        finish = body["choices"][0].get("finish_reason")
        if finish != e.finish_reason:
            out.append(f"finish_reason {finish!r}, expected {e.finish_reason!r}")
        calls = tuple(
            (c["function"]["name"], c["function"]["arguments"])
            for c in message.get("tool_calls") or ()
        )
        if calls != e.tool_calls:
            out.append(f"tool calls {calls!r}, expected {e.tool_calls!r}")
        if body.get("usage") != e.usage:
            out.append(f"usage {body.get('usage')!r}, expected {e.usage!r}")
        if validate and not out:
            from ..validators import ConformanceError, validate_completion

            try:
                validate_completion(client.body)
            except ConformanceError as exc:
                out.append(str(exc))
        return out
    problems: list[str] = []
    folded = _fold_sse(client.body, problems)
    out += problems
    if not folded.done:
        out.append("the stream does not end with data: [DONE]")
    if folded.content != e.content:
        out.append(f"streamed content {folded.content!r}, expected {e.content!r}")
    if e.error_event:
        if folded.error is None:
            out.append("the stream failed but sent no error event")
        elif e.message_has and e.message_has not in str(folded.error.get("message")):
            out.append(f"the error event does not name {e.message_has}: {folded.error!r}")
        return out
    if folded.error is not None:
        out.append(f"unexpected error event {folded.error!r}")
    if folded.finish != e.finish_reason:
        out.append(f"finish_reason {folded.finish!r}, expected {e.finish_reason!r}")
    calls = tuple((v[0], v[1]) for _, v in sorted(folded.tools.items()))
    if calls != e.tool_calls:
        out.append(f"streamed tool calls {calls!r}, expected {e.tool_calls!r}")
    if folded.usage != e.usage:
        out.append(f"usage chunk {folded.usage!r}, expected {e.usage!r}")
    if len(folded.ids) > 1:
        out.append(f"the chunks carry {len(folded.ids)} different ids")
    if validate and not out:
        from ..validators import ConformanceError, validate_stream

        try:
            validate_stream(client.body, expect_usage=e.usage is not None)
        except ConformanceError as exc:
            out.append(str(exc))
    return out


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
        return _check_locked(trace, client, finished, validate)


def _check_locked(
    trace: Trace, client: ClientView | None, finished: bool, validate: bool
) -> list[str]:
    s = trace.scenario
    e = expect(s, getattr(getattr(trace.probe.server, "hooks", None), "reject_on_error", False))
    out: list[str] = []
    n = len(trace.finalize)
    if n > 1 or len(trace.finalize_end) > 1:
        out.append(f"finalize ran {max(n, len(trace.finalize_end))} times")
    if finished:
        if trace.app_calls != 1:
            out.append(f"the server saw the request {trace.app_calls} times")
        if n == 0:
            out.append("finalize never ran")
        elif not trace.finalize_end:
            out.append("the last finalize hook never ran")
    if trace.app_error is not None and not isinstance(trace.app_error, asyncio.CancelledError):
        out.append(f"the app raised {trace.app_error!r}")
    client_stayed = client is not None and client.complete and not client.left
    # before hooks
    if finished or trace.agent or trace.finalize:
        if len(trace.before) != 1:
            out.append(
                f"the first before hook ran {len(trace.before)} times (if 0: did the app reject "
                "the request before the probe's hooks? pass headers=)"
            )
        for i, (want, got) in enumerate(zip(e.before_runs, trace.before_slots, strict=True)):
            if len(got) != want:
                out.append(f"before hook {i + 1} ran {len(got)} times, expected {want}")
    # finalize hooks
    if trace.finalize_end:
        for i, got in enumerate(trace.finalize_slots):
            if len(got) != 1:
                out.append(f"finalize hook {i + 1} ran {len(got)} times, expected once")
    # resolver and agent
    if len(trace.resolver) > 1 or len(trace.resolver) > e.resolver_runs:
        out.append(f"the resolver ran {len(trace.resolver)} times, expected {e.resolver_runs}")
    if len(trace.agent) > 1:
        out.append(f"the agent ran {len(trace.agent)} times")
    if trace.agent and not e.agent_runs:
        out.append("the agent ran although the request should have stopped before it")
    if finished and client_stayed and e.agent_runs and not trace.agent:
        out.append("the agent never ran")
    if finished and client_stayed and e.resolver_runs and not trace.resolver:
        out.append("the resolver never ran")
    if trace.agent and s.route == "dynamic" and trace.agent_data != [{"token": trace.token}]:
        out.append(f"the agent got agent_data {trace.agent_data!r}")
    out += _ctx_problems(trace)
    out += _order_problems(trace)
    if trace.finalize:
        fin = trace.finalize[0]
        out += _truth_problems(trace, fin)
        ctx = fin.ctx
        if finished and client_stayed and ctx is not None:
            if e.status == 200 and not e.agent_fails and getattr(ctx, "error", None) is not None:
                out.append(f"the request succeeded but its context holds error {ctx.error!r}")
            if e.status != 200 and getattr(ctx, "error", None) is None:
                out.append(f"the request failed with {e.status} but its context has no error")
        if (
            finished
            and client_stayed
            and e.final_status is not None
            and fin.wrapper_status != e.final_status
        ):
            out.append(f"finalize was told {fin.wrapper_status!r}, expected {e.final_status!r}")
    # the client's view
    if client is not None:
        out += client.problems
        accepted = trace.accepted_body()
        if not accepted.startswith(client.body):
            out.append("the client received bytes the server never sent")
        start = trace.handed_start()
        if client.status is not None and client.status != start:
            out.append(f"the client got HTTP {client.status}, the server sent {start}")
        if client.complete and finished:
            out += _answer_problems(trace, e, client, validate)
        elif client.status == 200 and e.streamed and client.body:
            problems: list[str] = []
            folded = _fold_sse(client.body, problems)
            if e.content is not None and not e.content.startswith(folded.content):
                out.append(f"streamed {folded.content!r}, not a prefix of {e.content!r}")
    return out


def check_isolation(traces: Sequence[Trace]) -> list[str]:
    """Requests never share a context, nor a request id."""
    out: list[str] = []
    owners: dict[int, int] = {}
    ids: dict[str, int] = {}
    for i, trace in enumerate(traces, 1):
        with trace.probe.lock:
            marks = [*trace.before, *trace.agent, *trace.finalize]
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
    return out


def _raise_if(problems: Sequence[tuple[Scenario | None, str]], title: str) -> None:
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
