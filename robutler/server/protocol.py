"""The Chat Completions wire format: request validation, errors, SSE framing, encoders.

Requests are parsed once with pydantic-core and validated against a model that accepts
the whole Chat Completions request and keeps unknown fields; agents get the original
message dicts. Responses are encoded with pydantic-core too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from jiter import from_json as _parse_json
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
)
from pydantic_core import to_json
from starlette.exceptions import HTTPException
from starlette.responses import Response

__all__ = [
    "DONE",
    "JSON_TYPE",
    "SSE_HEADERS",
    "ChatCompletionRequest",
    "ChatMessage",
    "ErrorBody",
    "RequestError",
    "as_request_error",
    "encode",
    "error_body",
    "error_frame",
    "error_response",
    "parse_request",
    "sse_data",
]

encode = to_json


def now() -> int:
    return int(time.time())


def _integral(value: Any) -> Any:
    """JSON has one number type: accept 3.0 where an integer is wanted (not true/false)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_integral)]


class OpenModel(BaseModel):
    """A strict request model that keeps fields it does not list (as they came)."""

    model_config = ConfigDict(extra="allow", strict=True)


class FunctionCall(OpenModel):
    name: StrictStr
    arguments: StrictStr


class ToolCall(OpenModel):
    id: StrictStr
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(OpenModel):
    type: StrictStr


class ChatMessage(OpenModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[ContentPart] | None = None
    name: StrictStr | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: StrictStr | None = None


class StreamOptions(OpenModel):
    include_usage: StrictBool | None = None


class ChatCompletionRequest(OpenModel):
    """A Chat Completions request; fields not listed here are kept as they came."""

    model: StrictStr | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: StrictStr | dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: Annotated[int, Field(ge=1, le=128), BeforeValidator(_integral)] | None = None
    max_tokens: Annotated[int, Field(ge=0), BeforeValidator(_integral)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=0), BeforeValidator(_integral)] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    stop: StrictStr | list[StrictStr] | None = None
    seed: Int | None = None
    user: StrictStr | None = None


class RequestError(Exception):
    """An error to answer in OpenAI's shape: status, message, `param`, `code`, headers.

    Every failure a client hears about becomes one (`as_request_error`). A 5xx is logged
    once with its traceback unless `log_traceback=False` (for a cause the message says all
    about, such as a missing server setting) or `logged=True` (logged where it happened).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        logged: bool = False,
        log_traceback: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers
        self.logged = logged  # the cause was logged already, where it happened
        self.log_traceback = log_traceback

    def body(self) -> dict[str, Any]:
        """The error body, `{"error": {...}}`."""
        return error_body(self.status, self.message, param=self.param, code=self.code)

    def response(self, request_id: str | None = None) -> Response:
        """The JSON answer, with `x-request-id` when given."""
        return error_response(
            self.status,
            self.message,
            param=self.param,
            code=self.code,
            headers=self.headers,
            request_id=request_id,
        )


def as_request_error(exc: BaseException, *, debug: bool, request_id: str) -> RequestError:
    """What the client is told about `exc`: itself if a RequestError, an HTTPException in
    OpenAI's shape, a failure of the upstream model API as a 502 (`upstream.py`), else a
    500 `agent_error` (the exception's text only with `debug`)."""
    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, HTTPException):
        detail = exc.detail
        headers = dict(exc.headers) if exc.headers else None
        if isinstance(detail, dict) and isinstance(detail.get("error"), dict):
            err = detail["error"]
            return RequestError(
                exc.status_code,
                str(err.get("message", "")),
                param=err.get("param"),
                code=err.get("code"),
                headers=headers,
            )
        message = detail if isinstance(detail, str) else encode(detail).decode()
        return RequestError(exc.status_code, message, headers=headers)
    from .upstream import upstream_error  # here, not at the top: it imports this module

    upstream = upstream_error(exc)
    if upstream is not None:  # the model API the agent called failed (502, 504, 429)
        return upstream
    detail = f"{type(exc).__name__}: {exc}" if debug else "The agent failed."
    return RequestError(500, f"{detail} (request id {request_id})", code="agent_error")


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> Response:
    """A JSON error in OpenAI's shape."""
    hdrs = dict(headers or {})
    if request_id:
        hdrs["x-request-id"] = request_id
    return Response(
        encode(error_body(status, message, param=param, code=code)),
        status_code=status,
        headers=hdrs,
        media_type="application/json",
    )


def not_allowed(method: str, path: str, allowed: Sequence[str]) -> Response | None:
    """The 405 for `method` on `path` when it is not one of `allowed` (HEAD goes with
    GET), naming the allowed methods; None when it is allowed."""
    if method in allowed or (method == "HEAD" and "GET" in allowed):
        return None
    shown = ", ".join(allowed)
    return error_response(
        405,
        f"Method {method} is not allowed on {path}; use {shown}.",
        code="method_not_allowed",
        headers={"allow": shown},
    )


# SSE framing: what every streamed answer is made of.
SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
)
JSON_TYPE = (b"content-type", b"application/json")
DONE = b"data: [DONE]\n\n"


def sse_data(payload: bytes) -> bytes:
    """One SSE event carrying `payload` (already JSON) as its data."""
    return b"data: " + payload + b"\n\n"


def error_frame(body: Mapping[str, Any]) -> bytes:
    """A Chat Completions stream's error event, followed by [DONE]."""
    return sse_data(encode(body)) + DONE


_ERROR_TYPES = {
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    502: "upstream_error",
    504: "upstream_error",
}


def error_type(status: int) -> str:
    """OpenAI-style `type` for an HTTP status."""
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "server_error" if status >= 500 else "invalid_request_error"


class ErrorDetail(BaseModel):
    """What an OpenAI error says; every field is always present (`param`, `code` may be null)."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """The body of every error answer: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorDetail


def error_body(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An `ErrorBody` as a dict (built by hand: it is on the hot path of every error)."""
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


def _loc_to_param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _validation_error(exc: ValidationError) -> RequestError:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)

    # Name the field, not pydantic's union branch; the deepest error says the most.
    def field_path(error: Any) -> tuple[int | str, ...]:
        return tuple(p for p in error["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))

    first = max(errors, key=lambda e: len(field_path(e)))
    param = _loc_to_param(field_path(first)) or None
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    where = f"'{param}'" if param else "the request body"
    return RequestError(
        422, f"Invalid value for {where}: {first['msg']}{more}", param=param, code="invalid_value"
    )


_UNION_TAGS = frozenset(
    {
        "str",
        "list[ContentPart]",
        "dict[str,any]",
        "list[str]",
        "function-after",
        "none",
        "int",
        "float",
    }
)


def json_kind(value: Any) -> str:
    """What JSON calls the kind of `value` (`null`, `integer`, `array`, ...), for messages."""
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def check_size(data: dict[str, Any], field: str, what: str, most: int, depth: int) -> None:
    """422 when the list in `field` holds more than `most` entries (`what` names them in
    the message) or the body's containers nest deeper than `depth` levels: limits that
    keep one request from costing the server more than a request should."""
    entries = data.get(field)
    if isinstance(entries, list) and len(entries) > most:
        raise RequestError(
            422,
            f"Too many {what}: {len(entries)} (the limit is {most}).",
            param=field,
            code="too_many_messages",
        )
    if _too_deep(data, depth):
        raise RequestError(
            422, f"The request body nests deeper than {depth} levels.", code="too_deeply_nested"
        )


def _too_deep(data: Any, limit: int) -> bool:
    """True when containers nest more than `limit` levels."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return False


def load_json_object(body: bytes, wanted: str) -> dict[str, Any]:
    """`body` as a JSON object, or the 422 `invalid_json` that says what was wrong
    (`wanted` names what the object must hold, for the empty-body message)."""
    if not body:
        raise RequestError(
            422,
            f"The request body is empty; send a JSON object with {wanted}.",
            code="invalid_json",
        )
    try:
        # Duplicate keys are refused: a proxy or log that reads the first of them would
        # see another request than the agent, which would get the last.
        data = _parse_json(body, catch_duplicate_keys=True)
    except ValueError as exc:
        if str(exc).startswith("Detected duplicate key"):
            raise RequestError(
                400,
                f"The request body is not valid JSON: {str(exc).replace('Detected d', 'd')} "
                "(each key may appear once in an object).",
                code="invalid_json",
            ) from None
        raise RequestError(
            422, f"The request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise RequestError(
            422,
            f"The request body must be a JSON object, got {type(data).__name__}.",
            code="invalid_json",
        )
    return data


def parse_request(
    body: bytes, *, max_messages: int = 10_000, max_depth: int = 64
) -> tuple[dict[str, Any], ChatCompletionRequest]:
    """Parse and validate a request body; return the raw dict and the validated model.

    Raises `RequestError` (422) naming the field at fault, also when there are more than
    `max_messages` messages or containers nest deeper than `max_depth`.
    """
    data = load_json_object(body, "'messages'")
    check_size(data, "messages", "messages", max_messages, max_depth)
    try:
        model = ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    return data, model
