"""Tests for robutler_testing.sse: the one SSE decoder the harness reads streams with."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robutler_testing.sse import ServerSentEvent, SSEDecoder, decode_sse


def events_of(body: bytes | str) -> list[tuple[str | None, str]]:
    return [(e.event, e.data) for e in decode_sse(body)]


def test_data_events_with_and_without_the_space_after_the_colon() -> None:
    assert events_of('data: {"a": 1}\n\ndata:[DONE]\n\n') == [(None, '{"a": 1}'), (None, "[DONE]")]
    assert events_of("data:  two spaces\n\n") == [(None, " two spaces")]  # only one is dropped


@pytest.mark.parametrize("brk", ["\n", "\r\n", "\r"])
def test_every_line_break_the_spec_allows(brk: str) -> None:
    body = f"event: delta{brk}data: one{brk}data: two{brk}{brk}data: three{brk}{brk}"
    assert events_of(body) == [("delta", "one\ntwo"), (None, "three")]


def test_mixed_line_breaks_and_a_lone_cr_before_crlf() -> None:
    # CR, then CRLF: two line breaks, so the first event ends there.
    assert events_of("data: a\r\r\ndata: b\n\r\n") == [(None, "a"), (None, "b")]


def test_multi_line_data_and_empty_data_lines() -> None:
    assert events_of("data: line 1\ndata:\ndata: line 3\n\n") == [(None, "line 1\n\nline 3")]
    assert events_of("data\n\n") == [(None, "")]  # a field name alone: an empty value


def test_comments_and_blocks_without_data_dispatch_nothing() -> None:
    decoder = SSEDecoder()
    body = ": keep-alive\n\nevent: lonely\n\nid: 7\n\n:x\ndata: real\n\n"
    assert [(e.event, e.data, e.id) for e in decode_sse(body, decoder)] == [(None, "real", "7")]
    assert decoder.problems == []


def test_id_persists_retry_counts_only_digits() -> None:
    body = (
        "id: 1\nretry: 250\ndata: a\n\ndata: b\nretry: 5s\n\nid: bad\0\ndata: c\n\nid\ndata: d\n\n"
    )
    got = [(e.data, e.id, e.retry) for e in decode_sse(body)]
    assert got == [("a", "1", 250), ("b", "1", None), ("c", "1", None), ("d", "", None)]


def test_event_lines_name_the_event_and_reset_after_it() -> None:
    body = "event: response.created\ndata: {}\n\ndata: {}\n\nevent:\ndata: x\n\n"
    assert [e.event for e in decode_sse(body)] == ["response.created", None, None]


def test_unknown_fields_are_skipped_and_reported_with_their_line() -> None:
    decoder = SSEDecoder()
    events = decode_sse('data: 1\n\n{"not": "a field"}\n\ndata: 2\n\n', decoder)
    assert [e.data for e in events] == ["1", "2"]
    [problem] = decoder.problems
    assert problem.line == 3 and "line 3 is not an SSE field" in problem.message


def test_a_byte_order_mark_may_open_the_stream() -> None:
    assert events_of("\ufeffdata: x\n\n".encode()) == [(None, "x")]


def test_bytes_that_are_not_utf8_are_reported_and_replaced() -> None:
    decoder = SSEDecoder()
    events = decode_sse(b"data: ok\n\ndata: \xff\n\n", decoder)
    assert [e.data for e in events] == ["ok", "\ufffd"]
    [problem] = decoder.problems
    assert "not valid UTF-8" in problem.message and "at byte 16" in problem.message


def test_an_unterminated_last_event_comes_from_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed("data: a\n\ndata: b\n") == [ServerSentEvent("a", line=1)]
    last = decoder.close()
    assert last is not None and (last.data, last.terminated, last.line) == ("b", False, 3)
    # without any line break at all, the partial line still counts
    [event] = decode_sse("data: c")
    assert (event.data, event.terminated) == ("c", False)
    assert decode_sse("data: a\n\n: trailing comment") == [ServerSentEvent("a", line=1)]


def test_events_come_out_as_soon_as_their_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert [e.data for e in decoder.feed(b"\ndata: b")] == ["a"]
    assert [e.data for e in decoder.feed(b"\n\n")] == ["b"]
    assert decoder.close() is None


def test_json_helper() -> None:
    [event] = decode_sse('data: {"x": [1, 2]}\n\n')
    assert event.json() == {"x": [1, 2]}


BODY = (
    "\ufeff: comment\r\n"
    'event: start\r\nid: 1\r\ndata: {"text": "héllo wörld 🙂"}\r\n\r\n'
    "data: two\rdata: lines\r\r"
    "retry: 10\ndata: [DONE]\n\n"
).encode()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_pieces_split_anywhere_decode_like_the_whole(data: st.DataObject) -> None:
    """Splits anywhere: inside a UTF-8 character, between CR and LF, inside a field name."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(BODY)), max_size=16)))
    pieces = [BODY[a:b] for a, b in zip([0, *cuts], [*cuts, len(BODY)], strict=True)]
    decoder = SSEDecoder()
    assert decode_sse(pieces, decoder) == decode_sse(BODY)
    assert decoder.problems == []


def test_every_single_byte_split() -> None:
    whole = decode_sse(BODY)
    assert decode_sse([BODY[i : i + 1] for i in range(len(BODY))]) == whole
    assert [json.loads(whole[0].data)["text"], whole[1].data, whole[2].retry] == [
        "héllo wörld 🙂",
        "two\nlines",
        10,
    ]
    assert [e.line for e in whole] == [2, 6, 9]


def test_text_pieces_work_like_bytes() -> None:
    text = BODY.decode()
    assert decode_sse([text[i : i + 5] for i in range(0, len(text), 5)]) == decode_sse(BODY)
