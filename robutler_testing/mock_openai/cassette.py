"""Cassettes: recorded upstream traffic, one interaction per request, in a readable YAML file.

An interaction is the request as the API saw it (method, path, the headers that matter with
secrets scrubbed, the JSON body as a mapping) and the reply: its status and headers, and
either its ``body`` (the bytes as text, e.g. a JSON object) or its SSE ``events`` (each
frame as sent, blank line included; ``"".join(events)`` is the body byte for byte) with
``times``, the seconds after the reply started at which each event arrived::

    version: 1
    interactions:
    - request:
        method: POST
        path: /v1/responses
        headers: {content-type: application/json, authorization: <scrubbed>}
        body: {model: gpt-4o, input: Hi!, stream: true}
      response:
        status: 200
        headers: {content-type: text/event-stream; charset=utf-8}
        events:
        - |+
          event: response.created
          data: {"type":"response.created",...}

        times: [0.31, ...]

Secrets never reach the file: `Scrubber` replaces the values of the secret headers
(`Authorization`, `api-key`, `OpenAI-Organization`, `OpenAI-Project`, cookies, and any
configured) with ``<scrubbed>``, drops transport noise, and replaces every occurrence of the
key (and organization/project ids) in anything written.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SCRUBBED",
    "SECRET_HEADERS",
    "Cassette",
    "CassetteError",
    "Interaction",
    "RecordedReply",
    "RecordedRequest",
    "Scrubber",
    "split_events",
]

VERSION = 1
SCRUBBED = "<scrubbed>"
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "openai-organization",
        "openai-project",
        "cookie",
        "set-cookie",
    }
)
# Transport details that say nothing about the API exchange (and change run to run).
_NOISE_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-encoding",
        "accept-encoding",
        "accept",
        "user-agent",
        "date",
        "server",
        "alt-svc",
        "via",
        "cf-ray",
        "cf-cache-status",
        "strict-transport-security",
        "x-content-type-options",
    }
)
_NOISE_PREFIXES = ("x-stainless-",)


class CassetteError(Exception):
    """A cassette that cannot be used: missing, unreadable, or of another version."""


@dataclass
class RecordedRequest:
    """The request as the API saw it (`body`: the JSON body, or the text of another)."""

    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class RecordedReply:
    """The reply: `body` (text) or the SSE `events` (frames as sent) with their `times`."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    events: list[str] | None = None
    times: list[float] | None = None

    @property
    def content(self) -> bytes:
        """The reply's body as the upstream sent it."""
        text = "".join(self.events) if self.events is not None else self.body or ""
        return text.encode()


@dataclass
class Interaction:
    """One request and its reply."""

    request: RecordedRequest
    reply: RecordedReply

    def to_yaml(self) -> dict[str, Any]:
        request: dict[str, Any] = {"method": self.request.method, "path": self.request.path}
        if self.request.headers:
            request["headers"] = dict(self.request.headers)
        request["body"] = self.request.body
        reply: dict[str, Any] = {"status": self.reply.status}
        if self.reply.headers:
            reply["headers"] = dict(self.reply.headers)
        if self.reply.events is not None:
            reply["events"] = [_Literal(e) for e in self.reply.events]
            if self.reply.times is not None:
                reply["times"] = [round(t, 3) for t in self.reply.times]
        else:
            reply["body"] = _Literal(self.reply.body or "")
        return {"request": request, "response": reply}

    @classmethod
    def from_yaml(cls, data: Any, where: str) -> Interaction:
        try:
            req, rep = data["request"], data["response"]
            request = RecordedRequest(
                str(req["method"]).upper(),
                str(req["path"]),
                req.get("body"),
                {str(k).lower(): str(v) for k, v in (req.get("headers") or {}).items()},
            )
            events = rep.get("events")
            reply = RecordedReply(
                int(rep["status"]),
                {str(k).lower(): str(v) for k, v in (rep.get("headers") or {}).items()},
                None if events is not None else str(rep.get("body") or ""),
                None if events is None else [str(e) for e in events],
                None if rep.get("times") is None else [float(t) for t in rep["times"]],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CassetteError(f"{where}: not an interaction ({exc!r})") from None
        times, events = reply.times, reply.events
        if times is not None and events is not None and len(times) != len(events):
            raise CassetteError(f"{where}: {len(times)} times for {len(events)} events")
        return cls(request, reply)


@dataclass
class Cassette:
    """The interactions of one cassette file, in the order they were recorded."""

    path: Path
    interactions: list[Interaction] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Cassette:
        import yaml

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CassetteError(
                f"cassette {path} does not exist: record it once against the real API with "
                "`pytest --record` (or ROBUTLER_RECORD=1) and an OPENAI_API_KEY"
            ) from None
        try:
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            raise CassetteError(f"cassette {path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise CassetteError(f"cassette {path} is not a version {VERSION} cassette")
        items = data.get("interactions") or []
        if not isinstance(items, list):
            raise CassetteError(f"cassette {path}: `interactions` is not a list")
        return cls(
            path,
            [
                Interaction.from_yaml(item, f"{path}, interaction #{n}")
                for n, item in enumerate(items, 1)
            ],
        )

    def dumps(self) -> str:
        import yaml

        header = (
            "# Upstream OpenAI API traffic recorded by robutler_testing's mock_openai and replayed\n"
            "# offline by it; re-record with `pytest --record` (secrets are scrubbed).\n"
        )
        data = {"version": VERSION, "interactions": [i.to_yaml() for i in self.interactions]}
        return header + yaml.dump(
            data, Dumper=_dumper(), sort_keys=False, allow_unicode=True, width=10**9
        )

    def save(self) -> None:
        """Write the file (atomically: a failed write leaves the old cassette)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = self.dumps()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class _Literal(str):
    """A string written as a YAML literal block (readable; exact when loaded back)."""


@functools.cache
def _dumper() -> Any:
    """The YAML dumper (made on first use: importing this module does not import yaml)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def literal(dumper: Any, text: str) -> Any:
        return dumper.represent_scalar("tag:yaml.org,2002:str", str(text), style="|")

    Dumper.add_representer(_Literal, literal)
    return Dumper


def split_events(text: str) -> list[str]:
    """SSE `text` as its frames, each with the blank line that ends it (the last one
    without, if the stream did not end cleanly); their concatenation is `text`."""
    events: list[str] = []
    start = 0
    lines = text.splitlines(keepends=True)
    position = 0
    for line in lines:
        position += len(line)
        if line in ("\n", "\r\n", "\r"):
            events.append(text[start:position])
            start = position
    if start < len(text):
        events.append(text[start:])
    return events


@dataclass
class Scrubber:
    """Takes the secrets out of what is written: secret header values and literal secrets.

    `headers`: extra header names to scrub; `secrets`: strings (the API key, organization
    and project ids) replaced wherever they appear.
    """

    headers: Iterable[str] = ()
    secrets: Sequence[str] = ()

    def __post_init__(self) -> None:
        self._names = SECRET_HEADERS | {h.lower() for h in self.headers}
        # longest first, so a secret containing another is replaced whole
        self._secrets = sorted(
            {s for s in self.secrets if s and len(s) >= 4}, key=len, reverse=True
        )

    def header_map(self, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        """The headers worth keeping, secret values scrubbed."""
        out: dict[str, str] = {}
        for name, value in headers:
            name = name.lower()
            if name in _NOISE_HEADERS or name.startswith(_NOISE_PREFIXES):
                continue
            out[name] = SCRUBBED if name in self._names else self.text(value)
        return out

    def text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, SCRUBBED)
        return text

    def value(self, value: Any) -> Any:
        """A JSON value with the secrets replaced in every string."""
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        return value


def body_value(raw: bytes) -> Any:
    """A request body as recorded: its JSON, or its text when it is not JSON."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
