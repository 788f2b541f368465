"""What the client read, checked against what its scenario should produce."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..sse import SSEDecoder, decode_sse
from .plans import Expectation
from .probe import Trace


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
class Folded:
    """The `data:` events of an SSE body, folded into what they say."""

    content: str = ""
    finish: str | None = None
    tools: dict[int, list[str]] = field(default_factory=dict)
    usage: Any = None
    usage_count: int = 0
    error: Any = None
    done: bool = False
    ids: set[str] = field(default_factory=set)


def fold_sse(body: bytes, problems: list[str]) -> Folded:
    """Fold the complete events of an SSE body (problems go to `problems`); an event the
    body ends before its blank line is left out, as a client would."""
    out = Folded()
    for i, sse in enumerate(_decoded(body, problems)):
        if out.done:
            problems.append(f"event {i} comes after data: [DONE]")
            break
        if sse.data == "[DONE]":
            out.done = True
            continue
        event = _object(i, sse, problems)
        if event is not None:
            _fold_event(out, event)
    return out


def _decoded(body: bytes, problems: list[str]) -> list[Any]:
    """The complete SSE events of `body`; the decoder's problems go to `problems`."""
    decoder = SSEDecoder()
    events = decoder.feed(body)
    problems += [problem.message for problem in decoder.problems]
    return events


def _object(i: int, sse: Any, problems: list[str]) -> dict[str, Any] | None:
    """Event `i`'s data as a JSON object, or None with the problem noted."""
    try:
        event = sse.json()
    except ValueError:
        problems.append(f"event {i} is not JSON: {sse.data[:60]!r}")
        return None
    if not isinstance(event, dict):
        problems.append(f"event {i} is not a JSON object: {sse.data[:60]!r}")
        return None
    return event


@dataclass
class ResponsesRead:
    """What a Responses answer said: its output text, function calls (name, arguments),
    usage, and final status (`completed`, `failed`, ...; None: a stream that never ended;
    `error` for one ended by an `error` event) with its error; `done` says a stream sent
    `data: [DONE]`, which a Responses stream never does."""

    text: str = ""
    tools: tuple[tuple[str, str], ...] = ()
    usage: Any = None
    status: str | None = None
    error: Any = None
    done: bool = False


_TERMINAL = ("response.completed", "response.incomplete", "response.failed")
_ERROR_EVENTS = ("response.failed", "error")


def read_response(response: Any) -> ResponsesRead:
    """What a `response` object says (its `message` items' output_text parts, its
    `function_call` items, usage, status and error)."""
    if not isinstance(response, dict):
        return ResponsesRead()
    text, tools = "", []
    for item in response.get("output") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    text += str(part.get("text") or "")
        elif item.get("type") == "function_call":
            tools.append((str(item.get("name")), str(item.get("arguments"))))
    return ResponsesRead(
        text, tuple(tools), response.get("usage"), response.get("status"), response.get("error")
    )


def fold_responses(body: bytes, problems: list[str]) -> ResponsesRead:
    """Read the complete events of a Responses stream, leniently (for a stream cut short,
    or when not validating): the text its deltas add up to, and what its terminal event's
    response says. The wire rules are `validate_response_stream`'s job."""
    out = ResponsesRead()
    for i, sse in enumerate(_decoded(body, problems)):
        if sse.data == "[DONE]":
            out.done = True
            continue
        event = _object(i, sse, problems)
        if event is None:
            continue
        kind = event.get("type")
        if out.status is not None:
            problems.append(f"event {i} ({kind}) comes after the stream's terminal event")
            break
        if kind == "response.output_text.delta":
            out.text += str(event.get("delta") or "")
        elif kind in _TERMINAL:
            final = read_response(event.get("response"))
            out.tools, out.usage, out.error = final.tools, final.usage, final.error
            out.status = final.status or kind.rsplit(".", 1)[-1]
        elif kind == "error":
            out.status, out.error = "error", event
    return out


def is_error_frame(frame: bytes) -> bool:
    """Whether one SSE frame the server sent carries an error event: `{"error": ...}` in
    Chat Completions, `response.failed` (or `error`) in the Responses API."""
    for sse in decode_sse(frame):
        try:
            event = sse.json()
        except ValueError:
            continue
        if isinstance(event, dict) and ("error" in event or event.get("type") in _ERROR_EVENTS):
            return True
    return False


def _fold_event(out: Folded, event: dict[str, Any]) -> None:
    if "error" in event:
        out.error = event["error"]
        return
    if event.get("id"):
        out.ids.add(event["id"])
    if event.get("usage"):
        out.usage = event["usage"]
        out.usage_count += 1
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


def answer_problems(trace: Trace, e: Expectation, client: ClientView, validate: bool) -> list[str]:
    """The whole answer the client read matches the scenario."""
    if client.status != e.status:
        return [f"expected HTTP {e.status}, got {client.status}: {client.body[:200]!r}"]
    out = _request_id(trace, client)
    if e.status != 200:
        return out + _error_answer(trace, e, client)
    if trace.scenario.responses:
        if not e.streamed:
            return out + _response_answer(e, client, validate)
        return out + _response_stream_answer(e, client, validate)
    if not e.streamed:
        return out + _json_answer(e, client, validate)
    return out + _stream_answer(trace, e, client, validate)


def _request_id(trace: Trace, client: ClientView) -> list[str]:
    ctx = trace.finalize[0].ctx if trace.finalize else None
    rid = client.headers.get("x-request-id")
    if ctx is not None and rid != getattr(ctx, "request_id", None):
        return [f"x-request-id {rid!r} is not the request id of finalize's context"]
    return []


def _error_answer(trace: Trace, e: Expectation, client: ClientView) -> list[str]:
    try:
        err = json.loads(client.body)["error"]
        assert isinstance(err["message"], str) and "type" in err and "code" in err
    except (ValueError, KeyError, TypeError, AssertionError):
        return [f"the error body is not OpenAI-shaped: {client.body[:200]!r}"]
    out = []
    if e.error_code and err["code"] != e.error_code:
        out.append(f"the error's code is {err['code']!r}, not {e.error_code!r}")
    if e.message_has and e.message_has not in err["message"]:
        out.append(f"the error message does not name {e.message_has}: {err['message']!r}")
    failing = next((h for h in trace.scenario.before if h.action == "reject"), None)
    if failing is not None and e.status == failing.status:
        want = f"rejected by before hook {trace.scenario.before.index(failing) + 1}"
        if err["message"] != want:
            out.append(f"the rejection message is {err['message']!r}, not {want!r}")
    return out


def _json_answer(e: Expectation, client: ClientView, validate: bool) -> list[str]:
    try:
        body = json.loads(client.body)
        choice = body["choices"][0]
        message = choice["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        return [f"not a chat.completion: {client.body[:200]!r}"]
    calls = tuple(
        (c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls") or ()
    )
    out = _differences(
        ("content", message.get("content"), e.content),
        ("finish_reason", choice.get("finish_reason"), e.finish_reason),
        ("tool calls", calls, e.tool_calls),
        ("usage", body.get("usage"), e.usage),
    )
    if validate and not out:
        out += _validated(lambda v: v.validate_completion(client.body))
    return out


def _stream_answer(trace: Trace, e: Expectation, client: ClientView, validate: bool) -> list[str]:
    out: list[str] = []
    folded = fold_sse(client.body, out)
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
    calls = tuple((v[0], v[1]) for _, v in sorted(folded.tools.items()))
    out += _differences(
        ("finish_reason", folded.finish, e.finish_reason),
        ("streamed tool calls", calls, e.tool_calls),
    )
    out += _stream_usage(trace, e, folded)
    if len(folded.ids) > 1:
        out.append(f"the chunks carry {len(folded.ids)} different ids")
    if validate and not out:
        asked = trace.scenario.include_usage and e.agent_usage is not None
        expect_usage = True if asked else (False if e.agent_usage is None else None)
        out += _validated(lambda v: v.validate_stream(client.body, expect_usage=expect_usage))
    return out


# A Responses answer's status for the finish reasons the probe's agents end with.
_RESPONSE_STATUS = {"stop": "completed", "tool_calls": "completed", "length": "incomplete"}


def _tokens(usage: Any) -> tuple[Any, Any, Any] | None:
    """Token counts as (input, output, total), from Chat Completions or Responses usage."""
    if not isinstance(usage, dict):
        return None if usage is None else (usage, None, None)
    if "input_tokens" in usage or "output_tokens" in usage:
        return usage.get("input_tokens"), usage.get("output_tokens"), usage.get("total_tokens")
    return usage.get("prompt_tokens"), usage.get("completion_tokens"), usage.get("total_tokens")


def _response_answer(e: Expectation, client: ClientView, validate: bool) -> list[str]:
    """A Responses JSON answer: a `response` object with the expected output."""
    from .. import response_validators, validators

    try:
        body = (
            response_validators.validate_response(client.body)
            if validate
            else json.loads(client.body)
        )
    except validators.ConformanceError as exc:
        return [str(exc)]
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("object") != "response":
        return [f"not a response object: {client.body[:200]!r}"]
    read = read_response(body)
    return _differences(
        ("output text", read.text, e.content or ""),
        ("status", read.status, _RESPONSE_STATUS.get(e.finish_reason or "")),
        ("function calls", read.tools, e.tool_calls),
        ("usage", _tokens(read.usage), _tokens(e.usage)),
    )


def _response_stream_answer(e: Expectation, client: ClientView, validate: bool) -> list[str]:
    """A Responses stream read to its end: its terminal event is `response.completed`, or
    `response.failed` carrying the error for an agent that failed after it opened. When
    validating, the stream is read by `validate_response_stream`."""
    from .. import response_validators, validators

    out: list[str] = []
    read = fold_responses(client.body, out)
    if read.done:
        out.append("the Responses stream sends data: [DONE] (it ends with its terminal event)")
    if validate and not out:
        expect_usage = e.agent_usage is not None
        try:
            report = response_validators.validate_response_stream(
                client.body, expect_usage=expect_usage
            )
        except validators.ConformanceError as exc:
            return [str(exc)]
        final = report.response or {}
        read = ResponsesRead(
            report.text,
            tuple((str(c["name"]), str(c["arguments"])) for c in report.tool_calls),
            report.usage,
            report.status,
            report.error or final.get("error"),
        )
    if read.text != e.content:
        out.append(f"streamed output text {read.text!r}, expected {e.content!r}")
    if e.error_event:
        message = read.error.get("message") if isinstance(read.error, dict) else None
        if read.status != "failed":
            out.append(f"the stream failed but ended with status {read.status!r}, not failed")
        elif e.message_has and e.message_has not in str(message):
            out.append(f"response.failed does not name {e.message_has}: {read.error!r}")
        return out
    want = _RESPONSE_STATUS.get(e.finish_reason or "")
    if read.status != want:
        out.append(f"the stream ended with status {read.status!r}, expected {want!r}")
    return out + _differences(
        ("streamed function calls", read.tools, e.tool_calls),
        ("the final response's usage", _tokens(read.usage), _tokens(e.usage)),
    )


def _stream_usage(trace: Trace, e: Expectation, folded: Folded) -> list[str]:
    """Usage the agent gave is streamed once: on the usage chunk when the client asked
    (include_usage), otherwise on the finish chunk or not at all; never invented."""
    out = []
    if trace.scenario.include_usage and folded.usage != e.agent_usage:
        out.append(f"usage chunk {folded.usage!r}, expected {e.agent_usage!r}")
    elif folded.usage not in (None, e.agent_usage):
        out.append(f"the stream reports usage {folded.usage!r}, the agent gave {e.agent_usage!r}")
    if folded.usage_count > 1:
        out.append(f"the stream reports usage {folded.usage_count} times")
    return out


def _differences(*pairs: tuple[str, Any, Any]) -> list[str]:
    return [f"{what} {got!r}, expected {want!r}" for what, got, want in pairs if got != want]


def _validated(run: Callable[[Any], Any]) -> list[str]:
    from .. import validators

    try:
        run(validators)
    except validators.ConformanceError as exc:
        return [str(exc)]
    return []


def prefix_problems(trace: Trace, e: Expectation, client: ClientView) -> list[str]:
    """A client that left early got a prefix of what a full read would give."""
    if client.status != 200 or not e.streamed or not client.body:
        return []
    if trace.scenario.responses:
        content = fold_responses(client.body, []).text
    else:
        content = fold_sse(client.body, []).content
    if e.content is not None and not e.content.startswith(content):
        return [f"streamed {content!r}, not a prefix of {e.content!r}"]
    return []
