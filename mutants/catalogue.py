"""One-line bugs in robutler/server that the lifecycle properties must catch.

Each `Mutant` names a file of `robutler/server`, the text of one line to change (`target`,
a piece of that line), what to put instead (`replacement`) and, when the same text occurs
more than once, a line before it (`after`) that picks the first occurrence below it. The
sentence says what bug the change plays. A target or anchor that is no longer in the
source fails the whole run (and the catalogue's test) loudly: when the server changes,
the catalogue is updated with it.

`DROPPED` keeps mutants that were tried and removed, each with why no lifecycle property
can tell them from the real server (equivalent mutants).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # under robutler/server/
    target: str
    replacement: str
    bug: str
    after: str | None = None


MUTANTS: tuple[Mutant, ...] = (
    # lifecycle.py: hooks ---------------------------------------------------------------
    Mutant(
        "finalize-unshielded",
        "lifecycle.py",
        "await asyncio.shield(task)",
        "await task",
        "Finalize hooks lose their shield: a host that cancels the request on disconnect "
        "cuts a finalize hook that waits (a database write) short.",
    ),
    Mutant(
        "finalize-left-running",
        "lifecycle.py",
        "cancelled = True",
        "raise",
        "A cancellation while finalize hooks wait makes the request return at once, with "
        "finalize still running behind the server's back.",
    ),
    Mutant(
        "finalize-restarts-after-a-wait",
        "lifecycle.py",
        "task = asyncio.ensure_future(finish(coro, pending))",
        "task = asyncio.ensure_future(self._run_finalize(state, response))",
        "When a finalize hook has to wait, the pass starts over in a task: the hooks before "
        "it run twice.",
    ),
    Mutant(
        "hooks-called-twice",
        "lifecycle.py",
        "return await self.call(*args, **kwargs)",
        "await self.call(*args, **kwargs); return await self.call(*args, **kwargs)",
        "Every hook is called twice, as by a retry that always fires.",
    ),
    Mutant(
        "finalize-error-stops-the-rest",
        "lifecycle.py",
        "except Exception:",
        "except LookupError:",
        "A finalize hook that raises stops the finalize hooks after it.",
    ),
    Mutant(
        "last-before-hook-skipped",
        "lifecycle.py",
        "for hook in self.before:",
        "for hook in self.before[:-1]:",
        "The last before hook never runs.",
    ),
    Mutant(
        "last-finalize-hook-skipped",
        "lifecycle.py",
        "for hook in self.finalize:",
        "for hook in self.finalize[:-1]:",
        "The last finalize hook never runs.",
    ),
    # calls.py: how user code is called ----------------------------------------------------
    Mutant(
        "sync-calls-run-twice",
        "calls.py",
        "result = await run_in_threadpool(self.fn, *args, **kwargs)",
        "await run_in_threadpool(self.fn, *args, **kwargs); "
        "result = await run_in_threadpool(self.fn, *args, **kwargs)",
        "Sync user code (hooks, handlers, resolvers) is called twice through Call, as by a "
        "retry that always fires.",
    ),
    Mutant(
        "async-calls-run-twice",
        "calls.py",
        "result = await self.fn(*args, **kwargs)",
        "await self.fn(*args, **kwargs); result = await self.fn(*args, **kwargs)",
        "Coroutine functions (async hooks, handlers, resolvers) are awaited twice through Call.",
    ),
    Mutant(
        "sync-generator-not-closed",
        "calls.py",
        "close()",
        "pass",
        "A sync generator whose stream is cut short is not closed: its finally waits for the "
        "garbage collector.",
        after="with contextlib.suppress(ValueError):",
    ),
    Mutant(
        "stream-charged-when-it-starts",
        "calls.py",
        "state = before()",
        "state = before(); after(state)",
        "A priced generator's per-call charge is taken when it starts, so streams that are "
        "cut or fail are charged (and finished ones twice).",
        after="if kind == CallKind.ASYNC_GEN:",
    ),
    Mutant(
        "coroutine-charged-before-the-call",
        "calls.py",
        "state = before()",
        "state = before(); after(state)",
        "A priced coroutine's per-call charge is taken before the call, so a call that "
        "raises is charged too (and one that returns, twice).",
        after="elif kind == CallKind.ASYNC:",
    ),
    Mutant(
        "coroutine-call-not-charged",
        "calls.py",
        "after(state)",
        "pass",
        "A priced coroutine's calls that return are not charged.",
        after="result = await fn(*args, **kwargs)",
    ),
    Mutant(
        "sync-call-not-charged",
        "calls.py",
        "after(state)",
        "pass",
        "A priced sync function's calls that return are not charged.",
        after="result = fn(*args, **kwargs)",
    ),
    # watch.py: the disconnect watcher and spawned tasks -----------------------------------
    Mutant(
        "watcher-does-not-cancel",
        "watch.py",
        "task.cancel()",
        "pass",
        "The disconnect watcher sees the client leave but does not stop the agent: its "
        "work goes on for nobody.",
        after="async def watch_disconnect(",
    ),
    Mutant(
        "disconnect-not-noted",
        "watch.py",
        "exchange.disconnected = True",
        "pass",
        "The watcher cancels the agent without noting that the client left: the "
        "cancellation escapes the request as if the server had cancelled it.",
    ),
    Mutant(
        "spawned-tasks-not-cancelled",
        "watch.py",
        "task.cancel()",
        "pass",
        "cancel_spawned cancels nothing: a task the agent started and did not await keeps "
        "running after its client left.",
        after="def cancel_spawned(",
    ),
    Mutant(
        "spawned-tasks-not-tracked",
        "watch.py",
        "state.spawned.append(task)",
        "pass",
        "The task factory does not note the tasks an agent starts, so a disconnect cannot "
        "cancel them.",
    ),
    # endpoint.py: disconnects and cancellation ------------------------------------------
    Mutant(
        "no-disconnect-watcher",
        "endpoint.py",
        "watcher = asyncio.ensure_future(watch_disconnect(self.receive, task, self))",
        "watcher = asyncio.ensure_future(asyncio.sleep(0))",
        "Nothing listens for the client leaving while the agent works.",
    ),
    Mutant(
        "disconnect-re-raised",
        "endpoint.py",
        "if not (self.disconnected or self.timed_out):",
        "if True:",
        "The cancellation a disconnect causes escapes the request as if the server had "
        "cancelled it.",
        after="except (Exception, asyncio.CancelledError) as exc:",
    ),
    Mutant(
        "server-cancel-not-marked",
        "endpoint.py",
        "self.mark_cut()",
        "pass",
        "A stream the server (host) cancels is finalized while its wrapper still says 'streaming'.",
        after="# the server is cancelling this request",
    ),
    Mutant(
        "server-cancel-leaves-spawned-tasks",
        "endpoint.py",
        "cancel_spawned(self.state, task)",
        "pass",
        "When the server (host) cancels a request, the tasks its agent started keep running.",
        after="# the server is cancelling this request",
    ),
    Mutant(
        "disconnect-leaves-spawned-tasks",
        "endpoint.py",
        "cancel_spawned(self.state, task)",
        "pass",
        "When the client leaves, the tasks its agent started and did not await keep running.",
        after="uncancel()",
    ),
    Mutant(
        "stream-not-closed",
        "endpoint.py",
        "await _close(items)",
        "pass",
        "The agent's stream is not closed when the answer ends early: its finally never runs.",
        after="keepalive.abort()",
    ),
    Mutant(
        "assembled-stream-not-closed",
        "endpoint.py",
        "await _close(items)",
        "pass",
        "A generator assembled into a JSON answer is not closed when the client leaves "
        "meanwhile: its finally never runs.",
        after="completion = await assemble(",
    ),
    Mutant(
        "stream-never-yields",
        "endpoint.py",
        "await asyncio.sleep(0)  # a disconnect cancels this task here",
        "pass",
        "A stream never gives the event loop a turn: an agent that never awaits runs its "
        "whole answer after its client left, and nothing else is served meanwhile.",
    ),
    Mutant(
        "resume-turns-a-throw-into-a-send",
        "eager.py",
        "pending = coro.throw(exc)",
        "pending = coro.send(None)",
        "A request resumed by hand loses the cancellation thrown into it: the agent runs "
        "on after its client left.",
    ),
    Mutant(
        "close-looks-for-the-wrong-method",
        "endpoint.py",
        'aclose = getattr(items, "aclose", None)',
        'aclose = getattr(items, "close", None)',
        "Closing a stream looks for close(): async generators are never closed.",
    ),
    # endpoint.py: the outcome finalize is told -------------------------------------------
    Mutant(
        "cut-stream-reported-completed",
        "endpoint.py",
        'response.status = "disconnected"',
        'response.status = "completed"',
        "A stream cut by a disconnect is reported as completed.",
    ),
    Mutant(
        "mark-cut-does-nothing",
        "endpoint.py",
        'response.status = "disconnected"',
        "pass",
        "A stream cut by a disconnect is finalized while its wrapper still says 'streaming'.",
    ),
    Mutant(
        "completed-before-the-last-frame",
        "endpoint.py",
        "tail = encoder.finish()",
        'tail = encoder.finish(); wrapper.status = "completed"',
        "A stream is marked completed before its final frame is handed over, so a client "
        "lost during that send still counts as served.",
    ),
    Mutant(
        "failed-stream-reported-completed",
        "endpoint.py",
        'wrapper.status = "failed"',
        'wrapper.status = "completed"',
        "A stream whose agent raised mid-way is reported as completed.",
        after="async def stream(",
    ),
    Mutant(
        "last-frame-not-counted",
        "endpoint.py",
        "wrapper.bytes_sent += len(tail)",
        "pass",
        "The wrapper's byte count leaves out the final frame.",
    ),
    Mutant(
        "json-placeholder-for-finalize",
        "endpoint.py",
        "_sent_json(body, [*headers]) if",
        "_SENT if",
        "Finalize gets an empty placeholder instead of the JSON answer the client got.",
    ),
    Mutant(
        "no-answer-is-a-success",
        "endpoint.py",
        "response = Response(status_code=DISCONNECTED)",
        "response = Response(status_code=200)",
        "A request that never answered (its client left) is finalized as a 200.",
    ),
    # endpoint.py: request ids and the end of a JSON answer --------------------------------
    Mutant(
        "json-answer-without-request-id",
        "endpoint.py",
        'headers.append((b"x-request-id", rid.encode()))',
        "pass",
        "JSON answers lose their x-request-id header.",
    ),
    Mutant(
        "stream-without-request-id",
        "endpoint.py",
        'headers = [*SSE_HEADERS, (b"x-request-id", state.request_id.encode())]',
        "headers = [*SSE_HEADERS]",
        "Streams lose their x-request-id header.",
    ),
    Mutant(
        "error-answer-without-request-id",
        "endpoint.py",
        "self.response = error.response(state.request_id)",
        "self.response = error.response()",
        "Error answers (401, 404, 422, 500) lose their x-request-id header.",
        after="return  # an answer is already on its way; the stream reported the failure",
    ),
    Mutant(
        "json-never-finished",
        "endpoint.py",
        "self.finished = True",
        "pass",
        "A JSON answer is never noted as handed over in full, so completed JSON requests "
        "are never charged.",
        after='await _send_last(self.send, {"type": "http.response.body", "body": body})',
    ),
    Mutant(
        "json-finished-before-its-body",
        "endpoint.py",
        "self.started = True",
        "self.started = True; self.finished = True",
        "A JSON answer is noted as handed over before its body is sent, so one whose "
        "client is lost during that send is charged as completed.",
        after="async def send_json(",
    ),
    Mutant(
        "completed-ignores-finished",
        "endpoint.py",
        'return self.finished and int(getattr(response, "status_code", 500)) < 400',
        'return int(getattr(response, "status_code", 500)) < 400',
        "A JSON answer whose body send was cut by a disconnect counts as completed (and "
        "is charged).",
    ),
    # endpoint.py: hang-ups ----------------------------------------------------------------
    Mutant(
        "hang-up-is-an-agent-failure",
        "endpoint.py",
        "except ClientDisconnect as exc:",
        "except ConnectionResetError as exc:",
        "A client that hangs up before its body is read is answered (and logged) as a 500.",
    ),
    Mutant(
        "body-read-raises-on-hang-up",
        "endpoint.py",
        "raise ClientDisconnect()",
        'raise RuntimeError("client disconnected")',
        "Reading the body of a client that left raises a plain error: a 500, logged.",
    ),
    # endpoint.py: context and usage --------------------------------------------------------
    Mutant(
        "context-not-reset",
        "endpoint.py",
        "_current.reset(token)",
        "pass",
        "The request's context stays current after the request.",
        after="state.spawned = None",
    ),
    Mutant(
        "context-without-messages",
        "endpoint.py",
        "state.messages = parsed.messages",
        "state.messages = []",
        "The context does not hold the request's messages.",
    ),
    Mutant(
        "context-says-not-streaming",
        "endpoint.py",
        "state.stream = parsed.stream",
        "state.stream = False",
        "The context says stream=False for every request.",
    ),
    Mutant(
        "charges-never-applied",
        "endpoint.py",
        "if state.charges:",
        "if not state.charges:",
        "@pricing per-request charges are never settled.",
    ),
    Mutant(
        "charges-whatever-the-outcome",
        "endpoint.py",
        "apply_request_charges(state, self.completed(response))",
        "apply_request_charges(state, True)",
        "Every priced request is charged, failed or disconnected ones too.",
    ),
    Mutant(
        "disconnected-streams-charged",
        "endpoint.py",
        'return response.status == "completed"',
        'return response.status != "failed"',
        "Streams cut by a disconnect are charged as completed.",
    ),
    Mutant(
        "failed-json-charged",
        "endpoint.py",
        'return self.finished and int(getattr(response, "status_code", 500)) < 400',
        'return int(getattr(response, "status_code", 500)) <= 500',
        "JSON answers that failed (500) or never went out (499) are charged.",
    ),
    Mutant(
        "json-usage-lost",
        "endpoint.py",
        'state.token_usage = completion.get("usage")',
        "state.token_usage = None",
        "Per-token charges of JSON answers ignore the agent's token usage.",
    ),
    Mutant(
        "stream-usage-lost",
        "endpoint.py",
        "state.token_usage = encoder.usage",
        "state.token_usage = None",
        "Per-token charges of streams ignore the agent's token usage.",
    ),
    # pricing.py ---------------------------------------------------------------------------
    Mutant(
        "failed-requests-charged",
        "pricing.py",
        "if not completed:",
        "if completed is None:",
        "Per-request charges are settled for requests that did not complete.",
    ),
    Mutant(
        "cap-used-as-floor",
        "pricing.py",
        'credits = min(credits, config["max_credits"])',
        'credits = max(credits, config["max_credits"])',
        "max_credits raises the charge instead of capping it.",
    ),
    Mutant(
        "prompt-tokens-only",
        "pricing.py",
        'tokens = usage.get("total_tokens")',
        'tokens = usage.get("prompt_tokens")',
        "Per-token charges count the prompt's tokens only.",
    ),
    Mutant(
        "no-per-token-charge",
        "pricing.py",
        'credits = config["credits_per_request"] + config["credits_per_token"] * tokens',
        'credits = config["credits_per_request"]',
        "credits_per_token is never charged.",
    ),
    Mutant(
        "charged-once-per-call",
        "pricing.py",
        "if wanted and not any(c is config for c in state.charges):",
        "if wanted:",
        "A priced function called twice in a request is charged per request twice.",
    ),
    Mutant(
        "zero-credit-call-records",
        "pricing.py",
        "if state is not None and credits_per_call:",
        "if state is not None:",
        "Functions without credits_per_call record a 0-credit charge on every call.",
    ),
    # context.py ---------------------------------------------------------------------------
    Mutant(
        "usage-shared-module-wide",
        "context.py",
        'self.usage: dict[str, Any] = {"total_credits": 0, "records": []}',
        'self.usage: dict[str, Any] = globals().setdefault("_usage", '
        '{"total_credits": 0, "records": []})',
        "Every request writes its usage into one module-level dict.",
    ),
    Mutant(
        "record-ids-per-request",
        "context.py",
        'record_id = f"usage-{next(_record_ids)}"',
        "record_id = f\"usage-{len(self.usage['records']) + 1}\"",
        "Usage record ids count per request, so requests hand out the same ids.",
    ),
    Mutant(
        "total-keeps-the-last-charge",
        "context.py",
        'self.usage["total_credits"] += credits',
        'self.usage["total_credits"] = credits',
        "total_credits keeps only the last charge.",
    ),
    # agents.py ----------------------------------------------------------------------------
    Mutant(
        "resolver-false-accepted",
        "agents.py",
        "if data is not False and data is not None:",
        "if data is not None:",
        "A resolver's False (no such agent) is taken as an agent.",
    ),
    Mutant(
        "agent-data-dropped",
        "agents.py",
        'kwargs["agent_data"] = state.agent_data',
        'kwargs["agent_data"] = None',
        "A dynamic agent does not get its resolver's data.",
    ),
)


@dataclass(frozen=True)
class Dropped:
    mutant: Mutant
    why: str


DROPPED: tuple[Dropped, ...] = (
    Dropped(
        Mutant(
            "finalize-cancellation-swallowed",
            "lifecycle.py",
            "raise asyncio.CancelledError",
            "pass",
            "A cancellation that came while finalize hooks waited is swallowed.",
        ),
        "It comes after finalize, when nothing of the request is left to stop: whether the "
        "host then sees CancelledError or a normal return is no lifecycle guarantee (the "
        "server swallows it too when a disconnect and the host cancel at once).",
    ),
    Dropped(
        Mutant(
            "watcher-left-running",
            "endpoint.py",
            "watcher.cancel()",
            "pass",
            "The disconnect watcher is not stopped after the agent is done.",
        ),
        "`watch.done` already keeps a late watcher from cancelling anything, and the watcher "
        "ends at its next receive() (http.disconnect once the answer is complete).",
    ),
    Dropped(
        Mutant(
            "watch-done-not-set",
            "endpoint.py",
            "self.done = True",
            "pass",
            "The watcher is not told that the agent is done.",
        ),
        "The watcher (and the request_timeout timer, which reads it too) is cancelled on the "
        "next lines, with no await in between: neither runs again.",
    ),
    Dropped(
        Mutant(
            "cancel-after-done",
            "watch.py",
            "if not exchange.done:",
            "if True:",
            "The watcher cancels even after the agent is done.",
        ),
        "Same as above: once `done` is set the watcher is cancelled before it can run.",
    ),
    Dropped(
        Mutant(
            "no-uncancel",
            "endpoint.py",
            "uncancel()",
            "pass",
            "The task's cancellation count is not reset after a disconnect.",
        ),
        "The count matters only to asyncio.timeout() and TaskGroup later in the same task; "
        "finalize's waiting part runs in a task of its own, and a timeout that fires still "
        "raises TimeoutError with the count left at one.",
    ),
    Dropped(
        Mutant(
            "second-answer-after-start",
            "endpoint.py",
            "if self.started:",
            "if False:",
            "A failure after the answer started sends a second answer.",
        ),
        "Unreachable: it needs a send() that raises after the answer started, and no probe "
        "answer makes a server's send fail (a pass-through Response with a bad header "
        "would, under uvicorn only).",
    ),
    Dropped(
        Mutant(
            "last-send-in-context",
            "endpoint.py",
            "token = _current.set(None)",
            "token = _current.set(_current.get())",
            "The last send runs inside the request's context.",
        ),
        "A cost, not a behaviour: callbacks the server schedules keep the request's objects "
        "alive longer (garbage-collector pressure under load, see the benchmarks).",
    ),
    Dropped(
        Mutant(
            "no-disconnect-error",
            "endpoint.py",
            'self.state.error = self.state.error or ConnectionResetError("client disconnected")',
            "pass",
            "A disconnect leaves no error in the context.",
        ),
        "What the context's `error` holds after a disconnect is not promised; finalize "
        "learns of the disconnect from the response (499 or a 'disconnected' wrapper).",
    ),
    Dropped(
        Mutant(
            "abandoned-coroutine-not-closed",
            "eager.py",
            "coro.close()",
            "pass",
            "A coroutine resumed by hand is not closed when its task is.",
        ),
        "GeneratorExit reaches resume() only when an abandoned task is garbage collected, "
        "which no request does.",
    ),
)
