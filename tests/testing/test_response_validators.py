"""robutler_testing's Responses validators: OpenAI-shaped answers pass, each defect is named."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robutler_testing import (
    ConformanceError,
    ResponseStreamReport,
    validate_response,
    validate_response_stream,
)
from robutler_testing.mock_openai import mock_openai
from robutler_testing.response_validators import EventProblem, _client_accumulator

RID = "resp_68c1f0a2b3e4819d9f0e1a2b3c4d5e6f"
MSG = "msg_68c1f0a2c5f8819da1b2c3d4e5f60718"
FC = "fc_68c1f0a2d6a9819db2c3d4e5f6071829"
USAGE = {
    "input_tokens": 12,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 5,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 17,
}


def response(status: str = "completed", output: list[Any] | None = None, **extra: Any) -> dict:
    """A response object in the shape api.openai.com sends."""
    return {
        "id": RID,
        "object": "response",
        "created_at": 1757540514,
        "status": status,
        "background": False,
        "completed_at": 1757540515 if status == "completed" else None,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "model": "gpt-4o-mini-2024-07-18",
        "output": [] if output is None else output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "prompt_cache_key": None,
        "safety_identifier": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": USAGE if status == "completed" else None,
        "user": None,
        "metadata": {},
        **extra,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def message(text: str, status: str = "completed") -> dict[str, Any]:
    content = [text_part(text)] if status == "completed" else []
    return {"id": MSG, "type": "message", "status": status, "content": content, "role": "assistant"}


def function_call(arguments: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": FC,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": "call_Qx1",
        "name": "get_weather",
    }


def events(*specs: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"type": kind, "sequence_number": n, **fields} for n, (kind, fields) in enumerate(specs)
    ]


TEXT_EVENTS = events(
    ("response.created", {"response": response("in_progress", usage=None)}),
    ("response.in_progress", {"response": response("in_progress", usage=None)}),
    ("response.output_item.added", {"output_index": 0, "item": message("", "in_progress")}),
    (
        "response.content_part.added",
        {"item_id": MSG, "output_index": 0, "content_index": 0, "part": text_part("")},
    ),
    *[
        (
            "response.output_text.delta",
            {"item_id": MSG, "output_index": 0, "content_index": 0, "delta": d, "logprobs": []},
        )
        for d in ["Hi", " there", "!"]
    ],
    (
        "response.output_text.done",
        {
            "item_id": MSG,
            "output_index": 0,
            "content_index": 0,
            "text": "Hi there!",
            "logprobs": [],
        },
    ),
    (
        "response.content_part.done",
        {"item_id": MSG, "output_index": 0, "content_index": 0, "part": text_part("Hi there!")},
    ),
    ("response.output_item.done", {"output_index": 0, "item": message("Hi there!")}),
    ("response.completed", {"response": response(output=[message("Hi there!")])}),
)

TOOL_EVENTS = events(
    ("response.created", {"response": response("in_progress", usage=None)}),
    ("response.in_progress", {"response": response("in_progress", usage=None)}),
    ("response.output_item.added", {"output_index": 0, "item": function_call("", "in_progress")}),
    *[
        ("response.function_call_arguments.delta", {"item_id": FC, "output_index": 0, "delta": d})
        for d in ['{"city"', ':"Paris"}']
    ],
    (
        "response.function_call_arguments.done",
        {"item_id": FC, "output_index": 0, "arguments": '{"city":"Paris"}'},
    ),
    ("response.output_item.done", {"output_index": 0, "item": function_call('{"city":"Paris"}')}),
    ("response.completed", {"response": response(output=[function_call('{"city":"Paris"}')])}),
)


def sse(evs: list[dict[str, Any]], names: bool = True) -> str:
    return "".join(
        (f"event: {e.get('type')}\n" if names else "") + f"data: {json.dumps(e)}\n\n" for e in evs
    )


def changed(evs: list[dict[str, Any]], index: int, change: Callable[[dict], Any]) -> list[dict]:
    out = copy.deepcopy(evs)
    change(out[index])
    return out


def messages_of(exc: pytest.ExceptionInfo[ConformanceError]) -> str:
    return "\n".join(str(p) for p in exc.value.problems)


def rejects_stream(body: Any, expected: str, **kwargs: Any) -> list[Any]:
    with pytest.raises(ConformanceError) as exc:
        validate_response_stream(body, **kwargs)
    assert expected in messages_of(exc), str(exc.value)
    return exc.value.problems


def rejects(body: Any, expected: str) -> list[Any]:
    with pytest.raises(ConformanceError) as exc:
        validate_response(body)
    assert expected in messages_of(exc), str(exc.value)
    return exc.value.problems


# what passes ---------------------------------------------------------------------------


def test_openai_shaped_responses_pass() -> None:
    for body in (
        response(output=[message("Hi there!")]),
        response(output=[message("Let me check."), function_call("{}")]),
        response(output=[message("Hi")], usage=None),
    ):
        assert validate_response(body) == body
        assert validate_response(json.dumps(body)) == body
        assert validate_response(json.dumps(body).encode()) == body
    failed = response("failed", error={"code": "server_error", "message": "Boom"}, usage=None)
    validate_response(failed)
    incomplete = response(
        "incomplete", [message("Hi")], incomplete_details={"reason": "max_output_tokens"}
    )
    validate_response(incomplete)


def test_openai_text_stream_passes_with_a_report() -> None:
    report = validate_response_stream(sse(TEXT_EVENTS), expect_usage=True)
    assert isinstance(report, ResponseStreamReport)
    assert (report.text, report.status, report.id) == ("Hi there!", "completed", RID)
    assert report.model == "gpt-4o-mini-2024-07-18"
    assert report.usage == USAGE and report.tool_calls == []
    assert len(report.events) == len(TEXT_EVENTS) and report.event_types[-1] == "response.completed"
    assert report.response is not None and report.response["output"] == [message("Hi there!")]


def test_openai_tool_stream_passes() -> None:
    report = validate_response_stream(sse(TOOL_EVENTS))
    assert report.tool_calls == [
        {"id": FC, "call_id": "call_Qx1", "name": "get_weather", "arguments": '{"city":"Paris"}'}
    ]
    assert report.text == ""


def test_stream_input_forms_agree() -> None:
    body = sse(TEXT_EVENTS)
    raw = body.encode()
    for form in (body, raw, [raw[i : i + 7] for i in range(0, len(raw), 7)], body.split("\n")):
        assert validate_response_stream(form).text == "Hi there!"


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_byte_chunks_split_anywhere(data: st.DataObject) -> None:
    evs = changed(TEXT_EVENTS, 4, lambda e: e.update(delta="Hé🙂"))
    evs[7]["text"] = evs[8]["part"]["text"] = "Hé🙂 there!"
    evs[9]["item"]["content"][0]["text"] = "Hé🙂 there!"
    evs[10]["response"]["output"][0]["content"][0]["text"] = "Hé🙂 there!"
    raw = sse(evs).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=10)))
    parts = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert validate_response_stream(parts).text == "Hé🙂 there!"


def test_a_failed_stream_is_valid_and_says_so() -> None:
    error = {"code": "server_error", "message": "The model failed."}
    evs = [*TEXT_EVENTS[:5], TEXT_EVENTS[-1]]
    evs[-1] = {
        "type": "response.failed",
        "sequence_number": 5,
        "response": response("failed", [message("Hi", "incomplete")], error=error, usage=None),
    }
    evs[-1]["response"]["output"][0]["content"] = [text_part("Hi")]
    report = validate_response_stream(sse(evs))
    assert (report.status, report.error) == ("failed", error)


def test_an_error_event_ends_the_stream() -> None:
    evs = [
        *TEXT_EVENTS[:2],
        {
            "type": "error",
            "sequence_number": 2,
            "message": "Overloaded",
            "code": "x",
            "param": None,
        },
    ]
    report = validate_response_stream(sse(evs))
    assert report.status == "error" and report.error == {
        "code": "x",
        "message": "Overloaded",
        "param": None,
    }


def test_the_mock_upstreams_streams_pass() -> None:
    """mock_openai plays api.openai.com: its Responses streams pass too."""
    headers = {"authorization": "Bearer sk-test"}
    with mock_openai() as upstream:
        upstream.add_text("Hello there, friend", usage={"input_tokens": 4, "output_tokens": 3})
        upstream.add_tool_calls([("get_weather", {"city": "Paris"})], text="Checking.")
        upstream.add_text("ok")
        url = upstream.base_url + "/responses"
        bodies = [
            httpx.post(
                url, json={"model": "gpt-4o", "input": "hi", "stream": True}, headers=headers
            ).text
            for _ in range(2)
        ]
        json_body = httpx.post(url, json={"model": "gpt-4o", "input": "hi"}, headers=headers).text
    first, second = (validate_response_stream(b, expect_usage=True) for b in bodies)
    assert first.text == "Hello there, friend" and first.usage["total_tokens"] == 7
    assert second.text == "Checking." and second.tool_calls[0]["arguments"] == '{"city": "Paris"}'
    assert validate_response(json_body)["output"][0]["content"][0]["text"] == "ok"


# validate_response: each defect named ---------------------------------------------------


def edit(path: tuple[Any, ...], value: Any) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return change


BASE = response(output=[message("Hi"), function_call('{"a": 1}')])
RESPONSE_DEFECTS = [
    (("object",), "chat.completion", "object is 'chat.completion', expected 'response'"),
    (("id",), KeyError, "id is missing"),
    (("id",), "", "id must not be empty"),
    (("created_at",), "yesterday", "created_at must be a Unix time"),
    (("model",), 5, "model must be a string"),
    (("status",), "done", "status is 'done', not one of"),
    (("error",), {"code": "server_error", "message": "x"}, "error must be null unless"),
    (("output",), {"a": 1}, "output must be an array"),
    (("output",), KeyError, "output is missing"),
    (("output", 0, "role"), "user", "output[0].role is 'user', expected 'assistant'"),
    (("output", 0, "content"), "Hi", "output[0].content must be an array of parts"),
    (("output", 0, "content", 0, "type"), "text", "output[0].content[0].type is 'text'"),
    (("output", 0, "content", 0, "text"), None, "output[0].content[0].text must be a string"),
    (("output", 0, "content", 0, "annotations"), KeyError, "annotations must be an array"),
    (("output", 0, "status"), "finished", "output[0].status is 'finished'"),
    (("output", 1, "call_id"), KeyError, "output[1].call_id is missing"),
    (("output", 1, "name"), "", "output[1].name must not be empty"),
    (("output", 1, "arguments"), "{'a': 1}", "output[1].arguments is not valid JSON"),
    (("output", 1, "id"), MSG, "output[1].id repeats the id of output[0]"),
    (("usage", "total_tokens"), 99, "usage does not add up"),
    (("usage", "output_tokens"), -1, "usage.output_tokens must be a non-negative integer"),
    (("usage", "input_tokens_details"), KeyError, "usage.input_tokens_details: Field required"),
    (("parallel_tool_calls",), KeyError, "parallel_tool_calls: Field required"),
    (("tools",), KeyError, "tools: Field required"),
    (("tool_choice",), KeyError, "tool_choice: Field required"),
    (("temperature",), "1", "temperature: Input should be a valid number"),
    # what the Open Responses ResponseResource requires beyond openai.types
    (("temperature",), None, "temperature must be a number, got null (required by the Open"),
    (("presence_penalty",), KeyError, "presence_penalty is missing; it must be a number"),
    (("top_logprobs",), None, "top_logprobs must be an integer, got null"),
    (("service_tier",), None, "service_tier must be a string, got null"),
    (("safety_identifier",), KeyError, "safety_identifier is missing; it must be a string or"),
    (("prompt_cache_key",), KeyError, "prompt_cache_key is missing"),
    (("reasoning",), KeyError, "reasoning is missing"),
    (("reasoning", "summary"), KeyError, "reasoning.summary is missing (null allowed)"),
    (("tools",), [{"type": "function", "name": "f"}], "tools[0].description is missing"),
]


@pytest.mark.parametrize(("path", "value", "expected"), RESPONSE_DEFECTS)
def test_response_defect_is_named(path: tuple[Any, ...], value: Any, expected: str) -> None:
    body = copy.deepcopy(BASE)
    edit(path, value)(body)
    rejects(body, expected)


def test_open_responses_checks_can_be_left_out() -> None:
    """An object that satisfies openai.types but not the Open Responses schema passes
    only with open_responses=False."""
    body = copy.deepcopy(BASE)
    for key in ("presence_penalty", "frequency_penalty", "safety_identifier", "prompt_cache_key"):
        del body[key]
    body["temperature"] = body["service_tier"] = None
    validate_response(body, open_responses=False)
    problems = rejects(body, "presence_penalty is missing")
    assert len(problems) == 6, problems


def test_a_failed_response_needs_its_error_and_an_incomplete_one_its_reason() -> None:
    rejects(response("failed", usage=None), "error must be an object with a message")
    rejects(response("incomplete", usage=None), "incomplete_details must give a reason")


def test_a_strict_parse_names_one_branch_not_every_item_kind() -> None:
    body = copy.deepcopy(BASE)
    body["output"][1]["status"] = 7
    problems = rejects(body, "output[1].status")
    assert len(problems) <= 2, problems  # not one problem per kind of output item


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{", "the response is not valid JSON"),
        ("[1]", "the response must be a JSON object, got array"),
        (b"\xff", "not valid UTF-8"),
        ({"error": {"message": "Nope"}}, "got an error instead of a response: 'Nope'"),
    ],
)
def test_what_is_not_a_response(body: Any, expected: str) -> None:
    rejects(body, expected)


def test_response_problems_are_all_collected() -> None:
    body = copy.deepcopy(BASE)
    body["object"] = "x"
    body["usage"]["total_tokens"] = 1
    body["output"][1]["arguments"] = "{"
    problems = rejects(body, "object is 'x'")
    assert len(problems) >= 3 and all(p.index is None for p in problems)


# validate_response_stream: each rule broken once -----------------------------------------


def test_rejects_a_missing_event_line() -> None:
    rejects_stream(sse(TEXT_EVENTS, names=False), "event 0: the event has no 'event:' line")


def test_rejects_an_event_line_that_names_another_type() -> None:
    body = sse(TEXT_EVENTS).replace("event: response.output_text.done", "event: response.done", 1)
    rejects_stream(body, "event 7: the 'event:' line says 'response.done'")


def test_rejects_lines_that_are_not_sse_fields() -> None:
    rejects_stream("hello\n" + sse(TEXT_EVENTS), "line 1 is not an SSE field")


def test_rejects_a_last_event_without_blank_line() -> None:
    rejects_stream(sse(TEXT_EVENTS)[:-1], "not followed by a blank line")


def test_rejects_data_that_is_not_json() -> None:
    rejects_stream(
        sse(TEXT_EVENTS[:3]) + "event: x\ndata: {oops\n\n", "event 3: the event is not valid JSON"
    )


def test_rejects_an_unknown_event_type() -> None:
    evs = changed(TEXT_EVENTS, 4, lambda e: e.update(type="response.output_text.chunk"))
    rejects_stream(
        sse(evs), "event 4: type 'response.output_text.chunk' is not a Responses stream event"
    )


def test_rejects_sequence_numbers_that_do_not_increase() -> None:
    evs = changed(TEXT_EVENTS, 5, lambda e: e.update(sequence_number=4))
    rejects_stream(sse(evs), "event 5: sequence_number 4 does not increase (the previous was 4)")
    evs = changed(TEXT_EVENTS, 5, lambda e: e.update(sequence_number="5"))
    rejects_stream(sse(evs), "event 5: sequence_number must be an integer")


def test_rejects_a_stream_that_does_not_start_with_response_created() -> None:
    rejects_stream(sse(TEXT_EVENTS[1:]), "event 0: the stream starts with 'response.in_progress'")


def test_rejects_response_created_twice() -> None:
    rejects_stream(
        sse([TEXT_EVENTS[0], *changed(TEXT_EVENTS, 0, lambda e: e.update(sequence_number=1))[:1]]),
        "response.created comes again",
    )


def test_rejects_a_response_id_that_changes() -> None:
    evs = changed(TEXT_EVENTS, 1, edit(("response", "id"), "resp_other"))
    rejects_stream(sse(evs), "event 1: response.in_progress is about response 'resp_other'")


def test_rejects_wrong_statuses_on_lifecycle_events() -> None:
    evs = changed(TEXT_EVENTS, 1, edit(("response", "status"), "completed"))
    rejects_stream(sse(evs), "response.in_progress carries a response with status 'completed'")
    evs = changed(TEXT_EVENTS, 10, edit(("response", "status"), "incomplete"))
    rejects_stream(sse(evs), "response.completed carries a response with status 'incomplete'")


def test_rejects_a_stream_that_never_ends() -> None:
    rejects_stream(sse(TEXT_EVENTS[:-1]), "the stream never ends")


def test_rejects_events_after_the_end() -> None:
    extra = {**TEXT_EVENTS[4], "sequence_number": 11}
    rejects_stream(
        sse([*TEXT_EVENTS, extra]),
        "event 11: response.output_text.delta comes after the stream ended (event 10)",
    )


def test_rejects_data_after_done() -> None:
    rejects_stream(
        sse(TEXT_EVENTS[:3]) + "data: [DONE]\n\n" + sse(TEXT_EVENTS[3:]),
        "event 3: events follow data: [DONE]",
    )


def test_rejects_items_added_out_of_order_or_twice() -> None:
    evs = changed(TEXT_EVENTS, 2, lambda e: e.update(output_index=1))
    rejects_stream(sse(evs), "event 2: output_item.added has output_index 1, expected 0")
    twice = [*TOOL_EVENTS[:-1]]
    again = {**copy.deepcopy(TOOL_EVENTS[2]), "output_index": 1, "sequence_number": 7}
    rejects_stream(sse([*twice, again]), "output_item.added repeats the item id")
    evs = changed(TEXT_EVENTS, 2, edit(("item", "status"), "completed"))
    rejects_stream(sse(evs), "an added item's status is 'in_progress', got 'completed'")


def test_rejects_a_content_part_at_the_wrong_index() -> None:
    evs = changed(TEXT_EVENTS, 3, lambda e: e.update(content_index=1))
    rejects_stream(sse(evs), "event 3: content_part.added has content_index 1, expected 0")


def test_rejects_a_delta_for_an_item_never_added() -> None:
    evs = changed(TEXT_EVENTS, 4, lambda e: e.update(output_index=3))
    rejects_stream(
        sse(evs),
        "event 4: response.output_text.delta names output_index 3, but no item was added there",
    )


def test_rejects_an_item_id_that_is_not_the_items() -> None:
    evs = changed(TEXT_EVENTS, 5, lambda e: e.update(item_id="msg_other"))
    rejects_stream(sse(evs), "event 5: item_id 'msg_other' is not the id of output item 0")


def test_rejects_text_events_for_a_function_call() -> None:
    delta = {
        "type": "response.output_text.delta",
        "sequence_number": 3,
        "item_id": FC,
        "output_index": 0,
        "content_index": 0,
        "delta": "x",
        "logprobs": [],
    }
    evs = [*TOOL_EVENTS[:3], delta]
    rejects_stream(sse(evs), "is about output item 0, a 'function_call', not a 'message'")


def test_rejects_done_texts_that_are_not_the_deltas() -> None:
    evs = changed(TEXT_EVENTS, 7, lambda e: e.update(text="Hi there"))
    rejects_stream(
        sse(evs), "event 7: response.output_text.done says 'Hi there', the deltas say 'Hi there!'"
    )
    evs = changed(TEXT_EVENTS, 8, edit(("part", "text"), "Hello"))
    rejects_stream(sse(evs), "event 8: content_part.done says 'Hello'")
    evs = changed(TEXT_EVENTS, 9, edit(("item", "content", 0, "text"), "Hello"))
    rejects_stream(sse(evs), "event 9: the done message's content")


def test_rejects_a_delta_after_its_part_is_done() -> None:
    late = {**TEXT_EVENTS[4], "sequence_number": 8}
    evs = [*TEXT_EVENTS[:8], late]
    rejects_stream(
        sse(evs), "event 8: response.output_text.delta comes after content part 0 was done"
    )


def test_rejects_an_item_done_before_its_parts() -> None:
    evs = [*TEXT_EVENTS[:7], TEXT_EVENTS[9]]
    evs[-1] = {**evs[-1], "sequence_number": 7}
    rejects_stream(sse(evs), "output item 0 is done before its content part 0")


def test_rejects_arguments_that_are_not_the_deltas_or_not_json() -> None:
    evs = changed(TOOL_EVENTS, 5, lambda e: e.update(arguments='{"city":"Rome"}'))
    rejects_stream(sse(evs), "function_call_arguments.done says")
    bad_json = copy.deepcopy(TOOL_EVENTS)
    bad_json[4]["delta"] = ':"Paris"'
    bad_json[5]["arguments"] = bad_json[6]["item"]["arguments"] = '{"city":"Paris"'
    bad_json[7]["response"]["output"][0]["arguments"] = '{"city":"Paris"'
    rejects_stream(sse(bad_json), "the arguments of function call 'get_weather' is not valid JSON")


def test_rejects_a_done_item_that_changed() -> None:
    evs = changed(TOOL_EVENTS, 6, edit(("item", "call_id"), "call_other"))
    rejects_stream(sse(evs), "the function call's call_id changed from 'call_Qx1' to 'call_other'")
    evs = changed(TOOL_EVENTS, 6, edit(("item", "id"), "fc_other"))
    rejects_stream(sse(evs), "output_item.done is a 'function_call' with id 'fc_other'")


def test_rejects_an_item_never_done() -> None:
    evs = [*TEXT_EVENTS[:9], {**TEXT_EVENTS[10], "sequence_number": 9}]
    rejects_stream(sse(evs), "the stream ends with output item 0 (message) never done")


def test_rejects_a_final_output_that_is_not_what_was_streamed() -> None:
    evs = changed(TEXT_EVENTS, 10, edit(("response", "output"), []))
    rejects_stream(sse(evs), "the final output's items [] are not the streamed items")
    evs = changed(TEXT_EVENTS, 10, edit(("response", "output", 0, "content", 0, "text"), "Bye"))
    rejects_stream(sse(evs), "the final output[0].content differs from its output_item.done")


def test_expect_usage() -> None:
    rejects_stream(sse(TEXT_EVENTS), "has usage, but none was expected", expect_usage=False)
    evs = changed(TEXT_EVENTS, 10, edit(("response", "usage"), None))
    rejects_stream(sse(evs), "has no usage, but usage was expected", expect_usage=True)


def test_the_response_inside_an_event_is_checked() -> None:
    evs = changed(TEXT_EVENTS, 10, edit(("response", "usage", "total_tokens"), 3))
    rejects_stream(sse(evs), "event 10: response.usage does not add up")
    evs = changed(TEXT_EVENTS, 0, edit(("response", "tools"), None))
    rejects_stream(sse(evs), "event 0: response.tools: Input should be a valid list")


def test_an_events_own_fields_are_parsed_strictly() -> None:
    evs = changed(TEXT_EVENTS, 4, lambda e: e.pop("logprobs"))
    rejects_stream(
        sse(evs),
        "event 4: logprobs: Field required (rejected by openai.types.responses.ResponseTextDeltaEvent",
    )


def test_the_clients_stream_helper_is_consulted() -> None:
    """The accumulator behind client.responses.stream() reports what it cannot follow."""
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    adapter: Any = TypeAdapter(ResponseStreamEvent)
    parsed = [(i, adapter.validate_python(e)) for i, e in enumerate(TEXT_EVENTS[1:])]
    problems: list[Any] = []
    _client_accumulator(parsed, problems)
    assert len(problems) == 1 and problems[0].index == 0
    assert "client.responses.stream() fails on response.in_progress" in str(problems[0])


def test_problems_name_their_event() -> None:
    evs = changed(TEXT_EVENTS, 5, lambda e: e.update(sequence_number=1))
    evs[8]["part"]["text"] = "x"
    problems = rejects_stream(sse(evs), "event 5:")
    assert {p.index for p in problems} >= {5, 8}
    assert all(isinstance(p, EventProblem) for p in problems)
    assert str(problems[0]).startswith("event ")


def test_rejects_an_empty_stream() -> None:
    rejects_stream("", "the stream has no events")


# any input: a report or a ConformanceError, never a crash --------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


@settings(max_examples=150, deadline=None)
@given(st.data(), JSON)
def test_a_field_replaced_by_any_json_never_crashes(data: st.DataObject, new: Any) -> None:
    evs = copy.deepcopy(data.draw(st.sampled_from([TEXT_EVENTS, TOOL_EVENTS])))
    index = data.draw(st.integers(0, len(evs) - 1))
    path = data.draw(st.sampled_from(_paths(evs[index])))
    edit(path, new)(evs[index])
    try:
        validate_response_stream(sse(evs))
    except ConformanceError as exc:
        assert exc.problems
    final = evs[-1].get("response")
    if isinstance(final, dict):
        try:
            validate_response(final)
        except ConformanceError as exc:
            assert exc.problems


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.lists(st.text() | st.binary(), max_size=4)))
def test_any_input_gives_a_report_or_a_conformance_error(sse_input: Any) -> None:
    try:
        validate_response_stream(sse_input)
    except ConformanceError as exc:
        assert exc.problems
