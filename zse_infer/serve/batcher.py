"""Dynamic batching (docs/serve.md): a full queue is 503, a late request 504 and its :class:`Job` marked abandoned."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from .errors import queue_full, timed_out

_log = logging.getLogger(__name__)


@dataclass
class Job:
    """A payload whose work may be abandoned: set on the event loop at its timeout, read on the model thread."""

    abandoned: threading.Event = field(default_factory=threading.Event, init=False, repr=False, compare=False)


@dataclass
class _Pending:
    payload: Any
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(
        self,
        run_batch: Callable[[list[Any]], list[Any]],
        executor: Executor,
        max_batch: int,
        max_delay_ms: float,
        max_queue: int,
        timeout_s: float,
        retry_after_s: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ):
        self._run_batch, self._executor, self._on_batch = run_batch, executor, on_batch
        self.max_batch, self.max_delay, self.timeout_s = max_batch, max_delay_ms / 1000, timeout_s
        self.retry_after_s = retry_after_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task | None = None
        self._last_size = 0

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="zse-batcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()  # a no-op for a future already done

    async def submit(self, payload: Any) -> tuple[Any, float, int]:
        """(result, seconds queued, batch size); raises 503/504 ServeErrors, or the payload's own error."""
        pending = _Pending(payload, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise queue_full(self.retry_after_s) from None
        try:
            result, waited, size = await asyncio.wait_for(asyncio.shield(pending.future), self.timeout_s)
        except TimeoutError:
            pending.future.cancel()  # the loop skips it if the model has not taken it yet
            if isinstance(payload, Job):
                payload.abandoned.set()  # and a running batch skips what it has not started for it
            raise timed_out(self.timeout_s) from None
        if isinstance(result, BaseException):
            raise result
        return result, waited, size

    async def _collect(self) -> list[_Pending]:
        batch = [await self._queue.get()]
        # Wait for company only while the last batch had some: a lone client never pays the delay.
        deadline = time.perf_counter() + (self.max_delay if self._last_size > 1 else 0.0)
        while len(batch) < self.max_batch:
            if not self._queue.empty():  # this loop is the queue's only reader
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return [p for p in batch if not p.future.done()]  # drop those that timed out while waiting

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            started = time.perf_counter()
            self._last_size = len(batch)
            if self._on_batch:
                self._on_batch(len(batch))
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, [p.payload for p in batch])
            except Exception as exc:  # noqa: BLE001 - the whole batch failed: every request gets the error
                _log.exception("batch of %d failed", len(batch))
                results = [exc] * len(batch)
            for pending, result in zip(batch, results, strict=False):
                if not pending.future.done():
                    pending.future.set_result((result, started - pending.enqueued, len(batch)))
