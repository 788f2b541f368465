"""The Responses API request: validation, and its conversation as Chat Completions messages.

Agents are written once, for Chat Completions `messages`; a Responses request reaches
them as those messages. `parse_responses_request` validates the body (422 naming the
field, like `protocol.parse_request`) and converts `input` in the same pass, so a bad
item is rejected before any agent runs. `items_to_messages` is the conversion itself;
it also turns a stored response's `output` back into the messages of its turn.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    StrictStr,
    StringConstraints,
    ValidationError,
)

from ..protocol import (
    OpenModel,
    RequestError,
    _integral,
    check_size,
    encode,
    load_json_object,
)
from ..protocol import json_kind as _kind

__all__ = [
    "STANDS_FOR",
    "Pending",
    "ResponsesRequest",
    "chat_messages",
    "check_calls_answered",
    "items_to_messages",
    "parse_responses_request",
    "splice",
]


_MAX_METADATA = 16  # pairs, as on OpenAI: keys of at most 64 characters, values of 512


class ResponsesRequest(OpenModel):
    """A Responses API request; fields not listed here are kept as they came.

    `echo()` gives the request fields a response object repeats. (No private attributes:
    pydantic's cost a Python-level lookup on every read.)
    """

    model: StrictStr | None = None
    input: StrictStr | list[Any]
    instructions: StrictStr | None = None
    stream: StrictBool | None = False
    store: StrictBool | None = True
    previous_response_id: StrictStr | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    metadata: (
        Annotated[
            dict[
                Annotated[str, StringConstraints(strict=True, max_length=64)],
                Annotated[str, StringConstraints(strict=True, max_length=512)],
            ],
            Field(max_length=_MAX_METADATA),
        ]
        | None
    ) = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    max_output_tokens: Annotated[int, Field(ge=1), BeforeValidator(_integral)] | None = None
    max_tool_calls: Annotated[int, Field(ge=0), BeforeValidator(_integral)] | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20), BeforeValidator(_integral)] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    include: list[StrictStr] | None = None
    user: StrictStr | None = None
    safety_identifier: StrictStr | None = None
    prompt_cache_key: StrictStr | None = None
    service_tier: StrictStr | None = None
    stream_options: dict[str, Any] | None = None
    background: Literal[False] | None = None  # background responses are refused (400)

    def echo(self) -> dict[str, Any]:
        """The fields of a response object that repeat this request.

        What both `openai.types.responses.Response` and the Open Responses
        `ResponseResource` require: the sampling values as numbers (the request's, else
        the API's defaults), `service_tier` a string, `reasoning`, `safety_identifier`
        and `prompt_cache_key` present (null when not sent), function tools complete.
        The one place a response's echo is made (JSON answers, stored responses, every
        stream snapshot, WebSocket turns).
        """
        return {
            "instructions": self.instructions,
            "metadata": dict(self.metadata or {}),
            "parallel_tool_calls": (
                True if self.parallel_tool_calls is None else self.parallel_tool_calls
            ),
            "previous_response_id": self.previous_response_id,
            "store": self.store is not False,
            "temperature": 1.0 if self.temperature is None else self.temperature,
            "top_p": 1.0 if self.top_p is None else self.top_p,
            "presence_penalty": 0.0 if self.presence_penalty is None else self.presence_penalty,
            "frequency_penalty": (
                0.0 if self.frequency_penalty is None else self.frequency_penalty
            ),
            "max_output_tokens": self.max_output_tokens,
            "max_tool_calls": self.max_tool_calls,
            "tool_choice": self.tool_choice if self.tool_choice is not None else "auto",
            "tools": [_echo_tool(tool) for tool in self.tools or ()],
            "text": self.text if self.text is not None else {"format": {"type": "text"}},
            "truncation": self.truncation or "disabled",
            "top_logprobs": 0 if self.top_logprobs is None else self.top_logprobs,
            "user": self.user,
            "background": False,
            "reasoning": _echo_reasoning(self.reasoning),
            "safety_identifier": self.safety_identifier,
            "prompt_cache_key": self.prompt_cache_key,
            "service_tier": "default",  # the only tier there is; an asked-for one is not
        }

    def echo_json(self) -> bytes:
        """`echo()` as a JSON object; for a request that sets none of the fields it
        repeats (the usual one), the encoding made once when this module loads."""
        if self.model_fields_set.isdisjoint(_ECHOED):
            return _DEFAULT_ECHO_JSON
        return encode(self.echo())

    def chat_tools(self) -> list[dict[str, Any]] | None:
        """`tools` in the Chat Completions shape (`{"type": "function", "function": {...}}`).

        Function tools are converted; other tool types are kept as they came.
        """
        if self.tools is None:
            return None
        out = []
        for tool in self.tools:
            if tool.get("type") == "function" and "function" not in tool:
                function = {k: v for k, v in tool.items() if k != "type"}
                out.append({"type": "function", "function": function})
            else:
                out.append(tool)
        return out

    def chat_tool_choice(self) -> str | dict[str, Any] | None:
        """`tool_choice` in the Chat Completions shape."""
        choice = self.tool_choice
        if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
            return {"type": "function", "function": {"name": choice["name"]}}
        return choice


def _echo_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool as a response repeats it: a function tool with every field its type names
    (`description`, `parameters`, `strict`: null when not sent), others as they came."""
    if tool.get("type") != "function":
        return tool
    echoed = dict(tool)
    for key in ("description", "parameters", "strict"):
        echoed.setdefault(key, None)
    return echoed


def _echo_reasoning(reasoning: dict[str, Any] | None) -> dict[str, Any] | None:
    """`reasoning` as a response repeats it: `effort` and `summary` always there."""
    if reasoning is None:
        return None
    echoed = dict(reasoning)
    echoed.setdefault("effort", None)
    echoed.setdefault("summary", None)
    return echoed


# The request fields `echo` repeats, or that change what it says (`background` is only
# ever false), and what it says of a request that sets none of them.
_ECHOED = frozenset(ResponsesRequest.model_fields) - {"model", "input", "stream", "background"}
_DEFAULT_ECHO_JSON = encode(ResponsesRequest(input="").echo())


# Fields robutler cannot honour: refused with a 400 rather than silently ignored.
_UNSUPPORTED = {
    "background": "background responses are not supported; send background=false or leave it out",
    "conversation": (
        "conversations are not supported; chain turns with previous_response_id, or send "
        "the whole conversation as input"
    ),
    "prompt": "prompt templates are not supported; send the prompt as instructions and input",
}


def _bad(param: str, message: str, code: str = "invalid_value") -> RequestError:
    return RequestError(422, f"Invalid value for '{param}': {message}", param=param, code=code)


def parse_responses_request(
    body: bytes,
    *,
    max_messages: int = 10_000,
    max_depth: int = 64,
    pending: list[Pending] | None = None,
) -> tuple[dict[str, Any], ResponsesRequest, list[dict[str, Any]]]:
    """Parse and validate a Responses request body; return the raw dict, the model and
    `input` as Chat Completions messages (without instructions or earlier turns). Raises
    `RequestError`: 422 naming the field at fault (also beyond `max_messages` input items
    or `max_depth` levels of nesting), 400 for a feature robutler does not offer.
    With `pending`, items that stand for others (`item_reference`, `compaction`) are
    left for the caller to resolve (see `items_to_messages`).
    """
    data = load_json_object(body, "'input'")
    if "input" not in data:
        raise RequestError(
            422,
            "Missing required parameter: 'input' (a string, or a list of input items).",
            param="input",
            code="missing_required_parameter",
        )
    items = data["input"]
    if not isinstance(items, (str, list)):
        raise _bad("input", f"must be a string or an array of input items, got {_kind(items)}")
    check_size(data, "input", "input items", max_messages, max_depth)
    for name, why in _UNSUPPORTED.items():
        value = data.get(name)
        if value is None or value is False:
            continue
        if name == "background" and value is not True:
            raise _bad("background", f"must be a boolean, got {_kind(value)}")
        raise RequestError(
            400,
            f"Unsupported parameter '{name}': {why}.",
            param=name,
            code="unsupported_parameter",
        )
    try:
        request = ResponsesRequest.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from None
    _check_tools(request.tools)
    input_messages = (
        [{"role": "user", "content": request.input}]
        if isinstance(request.input, str)
        else items_to_messages(request.input, "input", pending)
    )
    return data, request, input_messages


def _invalid(exc: ValidationError) -> RequestError:
    """The 422 for pydantic's errors: the deepest one, named by its field path."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)

    def field_path(error: Any) -> list[int | str]:
        # pydantic names union branches in the path ("str", "list[any]", "literal[...]")
        return [p for p in error["loc"] if not (isinstance(p, str) and _is_tag(p))]

    first = max(errors, key=lambda e: len(field_path(e)))
    param = ""
    for part in field_path(first):
        param += f"[{part}]" if isinstance(part, int) else (f".{part}" if param else part)
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    where = f"'{param}'" if param else "the request body"
    return RequestError(
        422,
        f"Invalid value for {where}: {first['msg']}{more}",
        param=param or None,
        code="invalid_value",
    )


_TAGS = frozenset({"str", "int", "float", "bool", "none", "function-after", "function-plain"})


def _is_tag(part: str) -> bool:
    return part in _TAGS or "[" in part


def _check_tools(tools: list[dict[str, Any]] | None) -> None:
    for i, tool in enumerate(tools or ()):
        kind = tool.get("type")
        if not isinstance(kind, str):
            raise _bad(f"tools[{i}].type", f"must be a string, got {_kind(kind)}")
        if kind == "function" and not isinstance(tool.get("name"), str):
            got = "a Chat Completions tool" if "function" in tool else _kind(tool.get("name"))
            raise _bad(
                f"tools[{i}].name",
                f"a function tool has a string 'name' next to its 'type' "
                f'({{"type": "function", "name": ..., "parameters": ...}}), got {got}',
            )


# input items -> chat messages --------------------------------------------------------

_ROLES = ("user", "assistant", "system", "developer")
_DROPPED_KEYS = frozenset({"type", "id", "status", "role", "content"})

# Input items that stand for others: resolved by the wire (the store, the sealer).
STANDS_FOR = frozenset({"item_reference", "compaction"})

# An item left for the caller: the placeholder message in the list, the item, its path.
Pending = tuple[dict[str, Any], Mapping[str, Any], str]


def items_to_messages(
    items: Sequence[Any], where: str = "input", pending: list[Pending] | None = None
) -> list[dict[str, Any]]:
    """Responses input items as Chat Completions messages.

    Messages keep their role; `input_text` parts become `text` parts (a lone text part
    becomes the string content), `input_image` an `image_url` part, `input_file` a `file`
    part; an assistant's `output_text` parts are joined and a `refusal` part becomes its
    `refusal`. `function_call` items become the `tool_calls` of an assistant message (of
    the assistant message right before them, if any), `function_call_output` items `tool`
    messages. Raises `RequestError` (422) naming the item at fault as `where[i]...`.

    With `pending`, each `item_reference` and `compaction` item becomes a placeholder
    message (an empty dict) and is listed in `pending` with its path, for the caller to
    replace by the messages it stands for (`splice`); without, they are refused.
    """
    messages: list[dict[str, Any]] = []
    for path, item, kind in _typed(items, where, "an input item"):
        if pending is not None and isinstance(kind, str) and kind in STANDS_FOR:
            slot: dict[str, Any] = {}
            messages.append(slot)
            pending.append((slot, item, path))
        elif kind is None or kind == "message":
            messages.append(_message(item, path))
        elif kind == "function_call":
            call = _function_call(item, path)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
                if last.get("content") == "":
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(_function_output(item, path))
        else:
            raise _unsupported(
                path,
                kind,
                "input items",
                "send messages, function_call and function_call_output items",
            )
    return messages


def splice(
    messages: list[dict[str, Any]], expansions: Mapping[int, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """`messages` with each placeholder (by `id()`) replaced by the messages it stands
    for; an assistant's tool calls join the assistant message right before them, as
    `function_call` items do."""
    out: list[dict[str, Any]] = []
    for message in messages:
        expansion = expansions.get(id(message))
        for m in [message] if expansion is None else expansion:
            last = out[-1] if out else None
            if (
                last is not None
                and m.get("role") == "assistant"
                and last.get("role") == "assistant"
                and m.get("tool_calls")
                and not m.get("content")
            ):
                last.setdefault("tool_calls", []).extend(m["tool_calls"])
                if last.get("content") == "":
                    last["content"] = None
            else:
                out.append(m)
    return out


def _typed(
    entries: Sequence[Any], where: str, what: str
) -> Iterator[tuple[str, Mapping[str, Any], Any]]:
    """Each entry of a list of typed objects with its path and `type` (422 for a non-object)."""
    for i, entry in enumerate(entries):
        path = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise _bad(path, f"{what} is an object, got {_kind(entry)}")
        yield path, entry, entry.get("type")


def _unsupported(path: str, kind: Any, what: str, instead: str) -> RequestError:
    """The 422 for an entry whose `type` names nothing this server takes."""
    if isinstance(kind, str):
        return _bad(
            f"{path}.type",
            f"{what} of type {kind!r} are not supported; {instead}",
            code="unsupported_value",
        )
    return _bad(f"{path}.type", f"must be a string, got {_kind(kind)}")


def _message(item: Mapping[str, Any], path: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        if "role" not in item:
            raise _bad(f"{path}.role", "is missing; a message item has a role and content")
        raise _bad(f"{path}.role", f"must be one of {', '.join(_ROLES)}, got {role!r}")
    if "content" not in item:
        raise _bad(f"{path}.content", "is missing; a message item has a role and content")
    content = item["content"]
    message: dict[str, Any] = {"role": role}
    if isinstance(content, str):
        message["content"] = content
    elif isinstance(content, list):
        if role == "assistant":
            message.update(_assistant_content(content, f"{path}.content"))
        else:
            message["content"] = _parts(content, f"{path}.content")
    else:
        raise _bad(
            f"{path}.content", f"must be a string or an array of parts, got {_kind(content)}"
        )
    for key, value in item.items():
        if key not in _DROPPED_KEYS:
            message[key] = value
    return message


def _text(part: Mapping[str, Any], path: str, key: str = "text") -> str:
    text = part.get(key)
    if not isinstance(text, str):
        raise _bad(f"{path}.{key}", f"must be a string, got {_kind(text)}")
    return text


def _parts(parts: list[Any], path: str) -> str | list[dict[str, Any]]:
    """User/system/developer (and tool output) parts as chat content parts."""
    out: list[dict[str, Any]] = []
    for ppath, part, kind in _typed(parts, path, "a content part"):
        if kind in ("input_text", "output_text", "text"):
            out.append({"type": "text", "text": _text(part, ppath)})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                what = "a file_id" if part.get("file_id") else _kind(url)
                raise _bad(
                    f"{ppath}.image_url",
                    f"must be a URL or data URL string (images by file_id are not supported), "
                    f"got {what}",
                    code="unsupported_value" if part.get("file_id") else "invalid_value",
                )
            image: dict[str, Any] = {"url": url}
            if part.get("detail") is not None:
                image["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": image})
        elif kind == "input_file":
            file = {k: v for k, v in part.items() if k != "type" and v is not None}
            out.append({"type": "file", "file": file})
        else:
            raise _unsupported(
                ppath, kind, "content parts", "use input_text, input_image or input_file"
            )
    if len(out) == 1 and out[0]["type"] == "text":
        return str(out[0]["text"])
    return out


def _assistant_content(parts: list[Any], path: str) -> dict[str, Any]:
    """An assistant message's parts: text joined into `content`, refusals into `refusal`."""
    texts: list[str] = []
    refusals: list[str] = []
    for j, part in enumerate(parts):
        ppath = f"{path}[{j}]"
        if not isinstance(part, Mapping):
            raise _bad(ppath, f"a content part is an object, got {_kind(part)}")
        kind = part.get("type")
        if kind in ("output_text", "input_text", "text"):
            texts.append(_text(part, ppath))
        elif kind == "refusal":
            refusals.append(_text(part, ppath, "refusal"))
        else:
            raise _bad(
                f"{ppath}.type",
                f"an assistant message's parts are output_text or refusal, got {kind!r}",
                code="unsupported_value",
            )
    out: dict[str, Any] = {"content": "".join(texts) if texts or not refusals else None}
    if refusals:
        out["refusal"] = "".join(refusals)
    return out


def _function_call(item: Mapping[str, Any], path: str) -> dict[str, Any]:
    for key in ("call_id", "name", "arguments"):
        value = item.get(key)
        if not isinstance(value, str):
            if key not in item:
                raise _bad(
                    f"{path}.{key}",
                    "is missing; a function_call item has call_id, name and arguments",
                )
            raise _bad(f"{path}.{key}", f"must be a string, got {_kind(value)}")
    return {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": item["arguments"]},
    }


def _function_output(item: Mapping[str, Any], path: str) -> dict[str, Any]:
    call_id = item.get("call_id")
    if not isinstance(call_id, str):
        if call_id is None:
            raise _bad(
                f"{path}.call_id",
                "is missing; a function_call_output item names the call_id it answers",
            )
        raise _bad(f"{path}.call_id", f"must be a string, got {_kind(call_id)}")
    if "output" not in item:
        raise _bad(f"{path}.output", "is missing; a function_call_output item has an output")
    output = item["output"]
    if isinstance(output, list):
        content: Any = _parts(output, f"{path}.output")
    elif isinstance(output, str):
        content = output
    else:
        raise _bad(f"{path}.output", f"must be a string or an array of parts, got {_kind(output)}")
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def check_calls_answered(request: ResponsesRequest, previous: Sequence[Mapping[str, Any]]) -> None:
    """400 when a `function_call_output` of the input answers a `call_id` that no call of
    the conversation made (a `function_call` of this input, or a tool call of the earlier
    turns, `previous`, as Chat Completions messages), as OpenAI answers it: an agent must
    not be handed the output of a call nobody made. Input already parsed by
    `items_to_messages` (the items are objects)."""
    items = request.input
    if isinstance(items, str):
        return
    known: set[Any] | None = None
    for i, item in enumerate(items):
        if item.get("type") != "function_call_output":
            continue
        if known is None:
            known = {
                call.get("id")
                for message in previous
                if message.get("role") == "assistant"
                for call in message.get("tool_calls") or ()
                if isinstance(call, Mapping)
            }
            known.update(c.get("call_id") for c in items if c.get("type") == "function_call")
        if item.get("call_id") not in known:
            raise RequestError(
                400,
                f"No tool call found for function call output with call_id "
                f"{item.get('call_id')!r} (input[{i}]): a function_call_output answers a "
                "function_call of the conversation, in this input or in the turns before it "
                "(previous_response_id).",
                param="input",
            )


def chat_messages(
    request: ResponsesRequest,
    input_messages: Sequence[Mapping[str, Any]],
    previous: Sequence[Mapping[str, Any]] = (),
    *,
    copy: bool = True,
) -> list[dict[str, Any]]:
    """The conversation an agent gets: instructions as a leading system message, then the
    earlier turns (`previous`, Chat Completions messages), then this request's input.

    The messages are copies, unless `copy` is false: for a caller whose messages are its
    own and that has kept what it needs of them (the server encodes what it stores first).
    """
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    if copy:
        messages.extend(dict(m) for m in previous)
        messages.extend(dict(m) for m in input_messages)
    else:
        messages.extend(cast("Sequence[dict[str, Any]]", previous))
        messages.extend(cast("Sequence[dict[str, Any]]", input_messages))
    return messages
