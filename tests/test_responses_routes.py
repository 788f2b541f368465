"""The Responses API's other routes with the official client against uvicorn on
127.0.0.1: compaction, input items, item references, and the clear refusals (cancel,
stream=true on a stored response, input token counts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from robutler.server import ServerBase
from robutler.server.responses.compaction import Sealer
from robutler.server.store import MemoryStore
from robutler_testing import validate_response
from robutler_testing.live import LiveServer


def make_app(**kwargs: Any) -> ServerBase:
    app = ServerBase(response_store=MemoryStore(), **kwargs)

    @app.agent("recall")
    async def recall(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        """Lists the conversation it got, one `role: content` line per message."""
        lines = []
        for m in messages:
            if m.get("tool_calls"):
                lines.append(f"{m['role']}: call {m['tool_calls'][0]['function']['name']}")
            else:
                lines.append(f"{m['role']}: {m.get('content')}")
        return "\n".join(lines)

    @app.agent("summarizer")
    async def summarizer(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        """Says what its conversation holds."""
        return " | ".join(f"{m['role']}: {m.get('content')}" for m in messages)

    @app.agent.compactor("summarizer")
    async def summarize(messages: list[dict[str, Any]]) -> str:
        return f"{len(messages)} messages, the last: {messages[-1]['content']}"

    @app.agent.input_tokens("summarizer")
    def count(messages: list[dict[str, Any]]) -> int:
        return sum(len(str(m.get("content")).split()) for m in messages)

    @app.agent("caller")
    async def caller(messages: list[dict[str, Any]], stream: bool = False) -> Any:
        """Says a word, then calls a tool."""
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": json.dumps({"q": "x"})},
        }
        return {"role": "assistant", "content": "Looking.", "tool_calls": [call]}

    return app


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with LiveServer(make_app(api_keys={"alice": "sk-alice", "bob": "sk-bob"})) as live:
        yield live.url


def client(base: str, key: str = "sk-alice", path: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=base + path, api_key=key, max_retries=0)


def test_compact_then_continue_from_the_compaction_item(base: str) -> None:
    alice = client(base)
    compacted = alice.responses.compact(
        model="recall",
        input=[
            {"role": "user", "content": "The code word is slate."},
            {"role": "assistant", "content": "OK."},
        ],
    )
    assert compacted.object == "response.compaction" and compacted.usage.total_tokens == 0
    (item,) = compacted.output
    assert item.type == "compaction" and "slate" not in item.encrypted_content
    answer = alice.responses.create(
        model="recall",
        input=[item.model_dump(), {"role": "user", "content": "What was it?"}],  # type: ignore[list-item]
    )
    validate_response(answer.model_dump(mode="json"))
    assert answer.output_text == (
        "user: The code word is slate.\nassistant: OK.\nuser: What was it?"
    )
    # per agent too, and with previous_response_id
    agent = client(base, path="/recall")
    again = agent.responses.compact(model="recall", previous_response_id=answer.id, input="more")
    sealed = again.output[0].model_dump()
    later = agent.responses.create(model="recall", input=[sealed])  # type: ignore[list-item]
    assert later.output_text.startswith("user: The code word is slate.\n")
    assert later.output_text.endswith("\nuser: What was it?\nuser: more")


def test_a_compaction_item_opens_only_for_its_key_and_unchanged(base: str) -> None:
    alice, bob = client(base), client(base, "sk-bob")
    item = alice.responses.compact(model="recall", input="secret").output[0].model_dump()
    with pytest.raises(openai.BadRequestError) as info:
        bob.responses.create(model="recall", input=[item])  # type: ignore[list-item]
    assert info.value.body["param"] == "input[0].encrypted_content"  # type: ignore[index]
    content = item["encrypted_content"]
    flipped = content[:-5] + ("A" if content[-5] != "A" else "B") + content[-4:]
    with pytest.raises(openai.BadRequestError) as info:
        alice.responses.create(model="recall", input=[{**item, "encrypted_content": flipped}])  # type: ignore[list-item]
    assert info.value.body["code"] == "invalid_encrypted_content"  # type: ignore[index]


def test_another_secret_cannot_open_an_item() -> None:
    one, two = Sealer("a" * 32), Sealer("b" * 32)
    sealed = one.seal([{"role": "user", "content": "hi"}], None)
    assert one.open(sealed, None, "p") == [{"role": "user", "content": "hi"}]
    with pytest.raises(Exception, match="was not made by this server"):
        two.open(sealed, None, "p")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Sealer("short")


def test_compact_without_model_is_a_400(base: str) -> None:
    for path in ("/v1", "/recall"):
        answer = httpx.post(
            f"{base}{path}/responses/compact",
            json={"input": "x"},
            headers={"Authorization": "Bearer sk-alice"},
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == "model"


def test_item_references_resolve_for_their_owner_only(base: str) -> None:
    alice, bob = client(base), client(base, "sk-bob")
    first = alice.responses.create(model="caller", input="look it up")
    message, call = first.output
    answer = alice.responses.create(
        model="recall",
        input=[
            {"type": "item_reference", "id": message.id},
            {"type": "item_reference", "id": call.id},
            {"type": "function_call_output", "call_id": "call_1", "output": "found"},
        ],
    )
    assert answer.output_text == "assistant: call lookup\ntool: found"
    with pytest.raises(openai.BadRequestError) as info:
        bob.responses.create(model="recall", input=[{"type": "item_reference", "id": message.id}])
    assert info.value.body["param"] == "input[0].id"  # type: ignore[index]
    assert info.value.body["code"] == "item_not_found"  # type: ignore[index]


def test_input_items_list_and_page(base: str) -> None:
    alice = client(base)
    first = alice.responses.create(model="recall", input="one")
    second = alice.responses.create(
        model="recall",
        previous_response_id=first.id,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "two"}]}],
    )
    page = alice.responses.input_items.list(second.id, order="asc")
    kinds = [(i.type, getattr(i, "role", None)) for i in page.data]
    assert kinds == [("message", "user"), ("message", "assistant"), ("message", "user")]
    assert page.data[0].content[0].text == "one"  # type: ignore[union-attr]
    newest = alice.responses.input_items.list(second.id, limit=1)
    assert newest.data[0].id == page.data[-1].id and newest.has_more
    rest = alice.responses.input_items.list(second.id, limit=5, after=newest.data[0].id)
    assert [i.id for i in rest.data] == [i.id for i in page.data[::-1][1:]]
    assert not rest.has_more
    # an input item can be referenced too
    again = alice.responses.create(
        model="recall", input=[{"type": "item_reference", "id": page.data[0].id}]
    )
    assert again.output_text == "user: one"
    with pytest.raises(openai.NotFoundError):
        client(base, "sk-bob").responses.input_items.list(second.id)
    with pytest.raises(openai.BadRequestError) as info:
        alice.responses.input_items.list(second.id, limit=500)
    assert info.value.body["param"] == "limit"  # type: ignore[index]


def test_what_is_not_offered_is_said_clearly(base: str) -> None:
    alice = client(base)
    stored = alice.responses.create(model="recall", input="x")
    with pytest.raises(openai.BadRequestError) as info:
        alice.responses.cancel(stored.id)
    assert "background" in info.value.message
    headers = {"Authorization": "Bearer sk-alice"}
    answer = httpx.get(f"{base}/v1/responses/{stored.id}?stream=true", headers=headers)
    assert (answer.status_code, answer.json()["error"]["param"]) == (400, "stream")
    with pytest.raises(openai.BadRequestError) as info:
        alice.responses.input_tokens.count(model="recall", input="x")
    assert info.value.body["code"] == "unsupported_endpoint"  # type: ignore[index]
    wrong = httpx.post(f"{base}/v1/responses/{stored.id}", headers=headers)
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, DELETE")
    assert httpx.get(f"{base}/recall/responses/compact", headers=headers).status_code == 405
    assert alice.responses.retrieve(stored.id).id == stored.id


def test_an_agents_own_compactor_and_token_counter(base: str) -> None:
    alice = client(base)
    item = alice.responses.compact(
        model="summarizer",
        input=[{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
    ).output[0]
    later = alice.responses.create(model="summarizer", input=[item.model_dump()])  # type: ignore[list-item]
    assert later.output_text == "system: 2 messages, the last: two"
    counted = alice.responses.input_tokens.count(
        model="summarizer", input="three more words", instructions="Be brief."
    )
    assert (counted.object, counted.input_tokens) == ("response.input_tokens", 5)
    per_agent = client(base, path="/summarizer").responses.input_tokens.count(
        model="anything", input="a b"
    )
    assert per_agent.input_tokens == 2
    with pytest.raises(TypeError, match="name the agent"):
        make_app().agent.compactor(None)  # type: ignore[arg-type]
