"""An incremental decoder for server-sent events, by the event-stream rules of the HTML spec.

Feed it bytes (or text) in pieces split anywhere, even inside a UTF-8 character or between
the CR and LF of a line break; it hands back each event once the blank line that ends it
has arrived::

    decoder = SSEDecoder()
    for piece in response.iter_bytes():
        for event in decoder.feed(piece):
            print(event.event, event.data)
    leftover = decoder.close()  # an event the stream never ended with a blank line, or None

The field rules: lines end with CRLF, LF or a lone CR; a line starting with ``:`` is a
comment; ``name: value`` loses one space after the colon, and a line without a colon is a
field with an empty value; ``data`` lines join with ``\\n``; ``event`` names the event
(``None``: the default, "message"); ``id`` (without NUL) sets the last event id, which
later events keep; ``retry`` counts only when it is all ASCII digits. A block without
``data`` dispatches nothing, so keep-alive comments never show up as events.

The spec ignores unknown fields; this decoder also lists them, and bytes that are not
UTF-8, in ``problems``, because for a server under test they are framing mistakes that
some client will trip over. One decoder reads one stream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["SSEDecoder", "SSEProblem", "ServerSentEvent", "decode_sse"]

_LINE_END = re.compile(rb"\r\n|\r|\n")
_FIELDS = frozenset({"data", "event", "id", "retry"})


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event. `line` is where its first field stands (1-based);
    `terminated` is False for an event the stream ended before its blank line."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    line: int = 0
    terminated: bool = True

    def json(self) -> Any:
        """`data` decoded as JSON (raises `ValueError` when it is not)."""
        return json.loads(self.data)


@dataclass(frozen=True)
class SSEProblem:
    """A framing mistake the spec would skip over: `line` (1-based) and what is wrong."""

    line: int
    message: str

    def __str__(self) -> str:
        return self.message


class SSEDecoder:
    """Decodes one event stream incrementally; see the module docstring for the rules."""

    def __init__(self) -> None:
        self.problems: list[SSEProblem] = []
        self.last_event_id: str | None = None
        self._buffer = bytearray()
        self._skip_lf = False  # the last piece ended with CR: an LF next is the same break
        self._line = 0
        self._offset = 0  # bytes of the stream before the line being buffered
        self._data: list[str] = []
        self._event: str | None = None
        self._retry: int | None = None
        self._first = 0  # the line of the pending event's first field

    def feed(self, piece: bytes | bytearray | memoryview | str) -> list[ServerSentEvent]:
        """Add the next piece of the stream; return the events it completed."""
        chunk = piece.encode("utf-8", "surrogatepass") if isinstance(piece, str) else bytes(piece)
        events = []
        for line in self._lines(chunk):
            event = self._line_read(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> ServerSentEvent | None:
        """End the stream: the event it left without a blank line (`terminated` False), if any.

        The spec drops such an event; a caller that wants to say so (or use it) gets it here.
        """
        if self._buffer:
            line, self._buffer = bytes(self._buffer), bytearray()
            self._line_read(line)
        return self._dispatch(terminated=False) if self._data else None

    def _lines(self, chunk: bytes) -> Iterator[bytes]:
        """The complete lines `chunk` ends; the rest waits in the buffer."""
        start = 0
        for match in _LINE_END.finditer(chunk):
            end, brk = match.start(), match.group()
            if self._skip_lf and end == 0 and brk == b"\n":
                self._skip_lf = False  # the LF of a CRLF split between two pieces
                start = 1
                self._offset += 1
                continue
            self._buffer += chunk[start:end]
            line, self._buffer = bytes(self._buffer), bytearray()
            self._skip_lf = brk == b"\r" and match.end() == len(chunk)
            start = match.end()
            yield line
            self._offset += len(line) + len(brk)
        if start < len(chunk):
            self._skip_lf = False
            self._buffer += chunk[start:]

    def _text(self, line: bytes) -> str:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.problems.append(
                SSEProblem(
                    self._line,
                    f"line {self._line} is not valid UTF-8 "
                    f"({exc.reason} at byte {self._offset + exc.start} of the stream)",
                )
            )
            text = line.decode("utf-8", "replace")
        if self._line == 1 and text.startswith("\ufeff"):
            text = text[1:]  # a byte order mark may open the stream
        return text

    def _line_read(self, raw: bytes) -> ServerSentEvent | None:
        self._line += 1
        line = self._text(raw)
        if not line:
            if self._data:
                return self._dispatch(terminated=True)
            self._forget()
            return None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name not in _FIELDS:
            excerpt = line if len(line) <= 80 else line[:80] + "..."
            self.problems.append(
                SSEProblem(
                    self._line,
                    f"line {self._line} is not an SSE field (data:, event:, id:, retry: "
                    f"or a :comment): {excerpt!r}",
                )
            )
            return None
        self._first = self._first or self._line
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value or None
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _forget(self) -> None:
        """A blank line after a block without data: nothing to dispatch."""
        self._event = None
        self._retry = None
        self._first = 0

    def _dispatch(self, *, terminated: bool) -> ServerSentEvent:
        event = ServerSentEvent(
            data="\n".join(self._data),
            event=self._event,
            id=self.last_event_id,
            retry=self._retry,
            line=self._first,
            terminated=terminated,
        )
        self._data = []
        self._forget()
        return event


def decode_sse(
    stream: bytes | str | Iterable[bytes | str], decoder: SSEDecoder | None = None
) -> list[ServerSentEvent]:
    """Every event of a whole stream (a body, or its pieces), the unterminated last one too.

    Pass a `decoder` to read its `problems` afterwards.
    """
    decoder = SSEDecoder() if decoder is None else decoder
    pieces = [stream] if isinstance(stream, (bytes, bytearray, memoryview, str)) else stream
    events = [event for piece in pieces for event in decoder.feed(piece)]
    last = decoder.close()
    return events if last is None else [*events, last]
