"""Stored responses: MemoryStore and SQLiteStore behave alike, owners never see each other's."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from robutler.server.store import MemoryStore, ResponseStore, SQLiteStore

RECORD = {"response": {"id": "resp_1", "output": [{"type": "message"}]}, "messages": ["é ✓"]}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    stores: list[ResponseStore] = []

    def make(**kwargs: Any) -> ResponseStore:
        if request.param == "memory":
            store: ResponseStore = MemoryStore(**kwargs)
        else:
            store = SQLiteStore(tmp_path / "responses.db", prune_every=1, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        run(store.close())


def test_put_get_delete_round_trip(make_store: Any) -> None:
    store = make_store()

    async def scenario() -> None:
        assert await store.get("resp_1") is None
        await store.put("resp_1", RECORD)
        assert await store.get("resp_1") == RECORD
        assert await store.delete("resp_1") is True
        assert await store.get("resp_1") is None
        assert await store.delete("resp_1") is False

    run(scenario())


def test_put_json_stores_the_record_it_encodes(make_store: Any) -> None:
    store = make_store()

    async def scenario() -> None:
        await store.put_json("resp_1", json.dumps(RECORD).encode())
        assert await store.get("resp_1") == RECORD
        assert await store.get("resp_1", "someone") is None
        await store.put_json("resp_2", b'{"response": {"id": "resp_2"}}', "key-a")
        assert await store.get("resp_2", "key-a") == {"response": {"id": "resp_2"}}
        assert await store.get("resp_2") is None

    run(scenario())


def test_records_are_copies(make_store: Any) -> None:
    store = make_store()

    async def scenario() -> None:
        record = {"response": {"id": "resp_1"}, "messages": []}
        await store.put("resp_1", record)
        record["messages"].append("changed after put")
        got = await store.get("resp_1")
        assert got == {"response": {"id": "resp_1"}, "messages": []}
        got["messages"].append("changed after get")
        assert (await store.get("resp_1"))["messages"] == []

    run(scenario())


def test_a_record_is_visible_only_to_its_owner(make_store: Any) -> None:
    store = make_store()

    async def scenario() -> None:
        await store.put("resp_a", RECORD, owner="alice")
        await store.put("resp_open", RECORD)  # an open server: no owner
        assert await store.get("resp_a", owner="alice") == RECORD
        assert await store.get("resp_a", owner="bob") is None
        assert await store.get("resp_a") is None
        assert await store.get("resp_open", owner="alice") is None
        assert await store.get("resp_open") == RECORD
        assert await store.delete("resp_a", owner="bob") is False
        assert await store.get("resp_a", owner="alice") == RECORD  # bob's delete did nothing
        assert await store.delete("resp_a", owner="alice") is True

    run(scenario())


def test_put_replaces_a_record(make_store: Any) -> None:
    store = make_store()

    async def scenario() -> None:
        await store.put("resp_1", {"v": 1}, owner="alice")
        await store.put("resp_1", {"v": 2}, owner="alice")
        assert await store.get("resp_1", owner="alice") == {"v": 2}

    run(scenario())


def test_memory_store_evicts_the_least_recently_used() -> None:
    store = MemoryStore(max_responses=3)

    async def scenario() -> None:
        for i in range(3):
            await store.put(f"resp_{i}", {"i": i})
        assert await store.get("resp_0") == {"i": 0}  # now the most recently used
        await store.put("resp_3", {"i": 3})  # evicts resp_1, the least recently used
        assert len(store) == 3
        assert await store.get("resp_1") is None
        assert [await store.get(f"resp_{i}") for i in (0, 2, 3)] == [{"i": 0}, {"i": 2}, {"i": 3}]

    run(scenario())


def test_memory_store_reads_by_another_owner_do_not_refresh() -> None:
    store = MemoryStore(max_responses=2)

    async def scenario() -> None:
        await store.put("resp_0", {"i": 0}, owner="alice")
        await store.put("resp_1", {"i": 1}, owner="alice")
        assert await store.get("resp_0", owner="bob") is None
        await store.put("resp_2", {"i": 2}, owner="alice")
        assert await store.get("resp_0", owner="alice") is None  # bob's read kept it oldest

    run(scenario())


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
def test_memory_store_bound_is_checked(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="max_responses"):
        MemoryStore(max_responses=bad)


def test_sqlite_store_keeps_the_newest_records(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.db", max_responses=3, prune_every=1)

    async def scenario() -> None:
        for i in range(5):
            await store.put(f"resp_{i}", {"i": i})
        assert await store.count() == 3
        assert await store.get("resp_1") is None
        assert await store.get("resp_4") == {"i": 4}
        await store.close()

    run(scenario())


def test_sqlite_store_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "r.db"

    async def write() -> None:
        store = SQLiteStore(path)
        await store.put("resp_1", RECORD, owner="alice")
        await store.close()

    async def read() -> Any:
        store = SQLiteStore(path)
        try:
            return await store.get("resp_1", owner="alice")
        finally:
            await store.close()

    run(write())
    assert run(read()) == RECORD


def test_sqlite_store_uses_wal_and_stays_off_the_event_loop(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.db")
    threads: list[str] = []
    original = store._put

    def spy(*args: Any) -> None:
        threads.append(threading.current_thread().name)
        original(*args)

    store._put = spy  # type: ignore[method-assign]

    async def scenario() -> str:
        await store.put("resp_1", RECORD)
        mode = await store._call(
            lambda: store._connect().execute("PRAGMA journal_mode").fetchone()[0]
        )
        await store.close()
        return str(mode)

    assert run(scenario()) == "wal"
    assert threads and threads[0].startswith("robutler-store")
    assert threads[0] != threading.main_thread().name


def test_closed_sqlite_store_says_so(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.db")

    async def scenario() -> None:
        await store.close()
        await store.close()  # twice is fine
        with pytest.raises(RuntimeError, match="closed"):
            await store.get("resp_1")

    run(scenario())


def test_two_sqlite_stores_on_one_file_share_records_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"

    async def scenario() -> None:
        first, second = SQLiteStore(path), SQLiteStore(path)

        async def writer(store: SQLiteStore, prefix: str) -> None:
            for i in range(50):
                await store.put(f"resp_{prefix}{i}", {"by": prefix, "i": i}, owner="k")

        await asyncio.gather(writer(first, "a"), writer(second, "b"))
        for i in range(50):
            assert await first.get(f"resp_b{i}", owner="k") == {"by": "b", "i": i}
            assert await second.get(f"resp_a{i}", owner="k") == {"by": "a", "i": i}
        assert await second.delete("resp_a0", owner="k") is True
        assert await first.get("resp_a0", owner="k") is None
        await first.close()
        await second.close()

    run(scenario())


def test_another_process_sees_what_this_one_stored(tmp_path: Path) -> None:
    """Workers of one machine are separate processes sharing the file."""
    path = tmp_path / "shared.db"
    child = textwrap.dedent(
        f"""
        import asyncio
        from robutler.server.store import SQLiteStore

        async def main():
            store = SQLiteStore({str(path)!r})
            for i in range(50):
                await store.put(f"resp_child{{i}}", {{"i": i}}, owner="k")
            got = await store.get("resp_parent", owner="k")
            await store.close()
            print(got["by"] if got else "missing")

        asyncio.run(main())
        """
    )

    async def parent() -> None:
        store = SQLiteStore(path)
        await store.put("resp_parent", {"by": "parent"}, owner="k")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", child, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        # the parent keeps writing while the child writes
        for i in range(50):
            await store.put(f"resp_p{i}", {"i": i}, owner="k")
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert out.decode().strip() == "parent"
        assert await store.get("resp_child49", owner="k") == {"i": 49}
        assert await store.count() == 101
        await store.close()

    run(parent())
