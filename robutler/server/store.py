"""Stored responses: what `previous_response_id`, retrieve and delete read.

A `ResponseStore` keeps JSON records by response id, each with an owner (the name of the
API key that created it, None on a server without keys); a record is visible only to its
owner, and to anyone else it does not exist. Two stores ship:

- `MemoryStore`: in this process, bounded, least recently used first out (for tests and
  single-process servers);
- `SQLiteStore`: a file, through the standard library's `sqlite3` on a thread of its own
  (never on the event loop), in WAL mode, so the workers of one machine share it.

A deployment on several machines plugs in a shared store by subclassing `ResponseStore`
with `get`/`put`/`delete` (and `close`) on Postgres, Redis or the like: the interface is
all the server uses.
"""

from __future__ import annotations

import abc
import asyncio
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pydantic_core import from_json, to_json

__all__ = ["MemoryStore", "ResponseStore", "SQLiteStore"]

T = TypeVar("T")


class ResponseStore(abc.ABC):
    """Where stored responses live: JSON records by response id, each visible to its owner.

    `owner` is the API key's name (None on an open server). `get` and `delete` with
    another owner act as if the id were unknown, so ids never leak between keys. Records
    are copied in and out: changing one after `put` or `get` changes nothing stored.
    """

    @abc.abstractmethod
    async def get(self, response_id: str, owner: str | None = None) -> dict[str, Any] | None:
        """The record stored under `response_id` for `owner`, or None."""

    @abc.abstractmethod
    async def put(
        self, response_id: str, record: Mapping[str, Any], owner: str | None = None
    ) -> None:
        """Store `record` (JSON-serialisable) under `response_id` for `owner`."""

    @abc.abstractmethod
    async def delete(self, response_id: str, owner: str | None = None) -> bool:
        """Remove the record; True if `owner` had one under `response_id`."""

    async def put_json(self, response_id: str, data: bytes, owner: str | None = None) -> None:
        """Store the record whose JSON encoding is `data` (a JSON object).

        This is what the server calls: it has the response encoded already. The default
        decodes `data` and calls `put`; a store that keeps JSON overrides it to keep
        `data` as it is.
        """
        await self.put(response_id, from_json(data), owner)

    async def close(self) -> None:  # noqa: B027 - optional for stores that hold nothing
        """Release what the store holds (connections, threads)."""


class MemoryStore(ResponseStore):
    """Records in this process's memory: at most `max_responses`, least recently used out.

    Reading a record (by its owner) makes it the most recently used.
    """

    def __init__(self, max_responses: int = 1000) -> None:
        if isinstance(max_responses, bool) or not isinstance(max_responses, int):
            raise TypeError(f"max_responses must be an int, got {type(max_responses).__name__}")
        if max_responses < 1:
            raise ValueError(f"max_responses must be at least 1, got {max_responses}")
        self.max_responses = max_responses
        self._records: OrderedDict[str, tuple[str | None, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    async def get(self, response_id: str, owner: str | None = None) -> dict[str, Any] | None:
        entry = self._records.get(response_id)
        if entry is None or entry[0] != owner:
            return None
        self._records.move_to_end(response_id)
        record: dict[str, Any] = from_json(entry[1])
        return record

    async def put(
        self, response_id: str, record: Mapping[str, Any], owner: str | None = None
    ) -> None:
        await self.put_json(response_id, to_json(record), owner)

    async def put_json(self, response_id: str, data: bytes, owner: str | None = None) -> None:
        self._records[response_id] = (owner, data)
        self._records.move_to_end(response_id)
        while len(self._records) > self.max_responses:
            self._records.popitem(last=False)

    async def delete(self, response_id: str, owner: str | None = None) -> bool:
        entry = self._records.get(response_id)
        if entry is None or entry[0] != owner:
            return False
        del self._records[response_id]
        return True


_SCHEMA = """
CREATE TABLE IF NOT EXISTS robutler_responses (
    id TEXT PRIMARY KEY,
    owner TEXT,
    created REAL NOT NULL,
    body BLOB NOT NULL
)
"""


class SQLiteStore(ResponseStore):
    """Records in an SQLite file, shared by every process that opens the same `path`.

    The database runs in WAL mode (readers never wait for a writer; writers wait up to
    `timeout` seconds for each other). All calls go to one thread of this store, so the
    event loop never blocks on disk. With `max_responses`, the oldest records beyond that
    many are removed as new ones arrive (checked every `prune_every` puts of this store).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_responses: int | None = 100_000,
        timeout: float = 5.0,
        prune_every: int = 100,
    ) -> None:
        if max_responses is not None and (
            isinstance(max_responses, bool)
            or not isinstance(max_responses, int)
            or max_responses < 1
        ):
            raise ValueError(f"max_responses must be a positive int or None, got {max_responses!r}")
        self.path = str(path)
        self.max_responses = max_responses
        self.timeout = timeout
        self.prune_every = max(1, prune_every)
        self._puts = 0
        self._db: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="robutler-store"
        )

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r}>"

    # on the store's thread ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            self._set_up(db)
            self._db = db
        return self._db

    def _set_up(self, db: sqlite3.Connection) -> None:
        """WAL mode and the table. Switching to WAL can fail with "database is locked"
        without waiting for the busy timeout while another store on the file sets up
        (SQLite does not call its busy handler there), so it is retried until `timeout`."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)  # on the store's own thread, never the event loop's

    def _get(self, response_id: str, owner: str | None) -> bytes | None:
        row = (
            self._connect()
            .execute(
                "SELECT body FROM robutler_responses WHERE id = ? AND owner IS ?",
                (response_id, owner),
            )
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def _put(self, response_id: str, body: bytes, owner: str | None, prune: bool) -> None:
        db = self._connect()
        db.execute(
            "INSERT OR REPLACE INTO robutler_responses (id, owner, created, body) "
            "VALUES (?, ?, ?, ?)",
            (response_id, owner, time.time(), body),
        )
        if prune and self.max_responses is not None:
            # rowids grow with each insert: everything older than the newest N goes
            db.execute(
                "DELETE FROM robutler_responses WHERE rowid <= (SELECT rowid FROM "
                "robutler_responses ORDER BY rowid DESC LIMIT 1 OFFSET ?)",
                (self.max_responses,),
            )

    def _delete(self, response_id: str, owner: str | None) -> bool:
        cursor = self._connect().execute(
            "DELETE FROM robutler_responses WHERE id = ? AND owner IS ?", (response_id, owner)
        )
        return cursor.rowcount > 0

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError(f"{self!r} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # the interface ---------------------------------------------------------------------

    async def get(self, response_id: str, owner: str | None = None) -> dict[str, Any] | None:
        body = await self._call(self._get, response_id, owner)
        if body is None:
            return None
        record: dict[str, Any] = from_json(body)
        return record

    async def put(
        self, response_id: str, record: Mapping[str, Any], owner: str | None = None
    ) -> None:
        await self.put_json(response_id, to_json(record), owner)

    async def put_json(self, response_id: str, data: bytes, owner: str | None = None) -> None:
        self._puts += 1
        prune = self._puts % self.prune_every == 0
        await self._call(self._put, response_id, data, owner, prune)

    async def delete(self, response_id: str, owner: str | None = None) -> bool:
        return await self._call(self._delete, response_id, owner)

    async def count(self) -> int:
        """How many records the file holds (for every owner)."""

        def count() -> int:
            row = self._connect().execute("SELECT COUNT(*) FROM robutler_responses").fetchone()
            return int(row[0])

        return await self._call(count)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close)
        finally:
            executor.shutdown(wait=False)
