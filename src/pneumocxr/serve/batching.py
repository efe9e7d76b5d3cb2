"""Micro-batching: requests that arrive together share one forward pass.

Requests queue here; a collector takes what is waiting (up to `max_size`), waits a few
milliseconds more only while other requests are still being decoded, and hands the batch to
`run` in one worker thread, so the event loop never runs the model and the model never runs
twice at once (Grad-CAM hooks are not thread-safe).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    largest: int = 0


class MicroBatcher:
    def __init__(self, run: Callable[[list], list], max_size: int = 16, wait_s: float = 0.005):
        self.run, self.max_size, self.wait_s = run, max_size, wait_s
        self.stats = BatchStats()
        self._arriving = 0
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._task = asyncio.create_task(self._collect())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    @contextlib.contextmanager
    def arriving(self):
        """Mark a request that will submit soon (while it decodes), so the collector waits."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    async def submit(self, item):
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.wait_s
            while len(batch) < self.max_size:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if self._arriving == 0 or remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            await self._run(loop, batch)

    async def _run(self, loop, batch) -> None:
        items = [item for item, _ in batch]
        self.stats.batches += 1
        self.stats.items += len(items)
        self.stats.largest = max(self.stats.largest, len(items))
        try:
            results = await loop.run_in_executor(self._pool, self.run, items)
        except Exception as err:  # reported to every waiting request (as a 500)
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, future), result in zip(batch, results):
            if not future.done():  # a client that went away cancels its future
                future.set_result(result)
