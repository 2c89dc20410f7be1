"""The batcher on its own (no model, no HTTP): who waits for company, and how batches form."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from zse_infer.serve.batcher import Batcher


def _batcher(sizes: list[int], max_delay_ms: float, gate: threading.Event | None = None) -> Batcher:
    def run(payloads):
        sizes.append(len(payloads))
        if gate is not None:
            gate.wait(10)
        return [p * 2 for p in payloads]

    return Batcher(run, ThreadPoolExecutor(1), max_batch=16, max_delay_ms=max_delay_ms, max_queue=64, timeout_s=60)


def test_a_lone_client_never_waits_for_company():
    """With a 20 s delay configured, requests one at a time still answer at once: the batcher
    waits only while the previous batch had company."""
    sizes: list[int] = []

    async def main():
        b = _batcher(sizes, max_delay_ms=20_000)
        b.start()
        t0 = time.monotonic()
        for i in range(3):
            result, _, size = await b.submit(i)
            assert result == 2 * i and size == 1
        await b.stop()
        return time.monotonic() - t0

    assert asyncio.run(main()) < 10  # far below one 20 s delay, on any machine
    assert sizes == [1, 1, 1]


def test_requests_that_queue_while_the_model_is_busy_share_a_batch():

    sizes: list[int] = []
    gate = threading.Event()

    async def main():
        b = _batcher(sizes, max_delay_ms=0, gate=gate)
        b.start()
        first = asyncio.create_task(b.submit(0))
        while not sizes:  # the model is now busy with the first request
            await asyncio.sleep(0.01)
        rest = [asyncio.create_task(b.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        gate.set()
        results = [await first] + [await t for t in rest]
        await b.stop()
        return results

    results = asyncio.run(main())
    assert [r[0] for r in results] == [0, 2, 4, 6, 8, 10]
    assert sizes == [1, 5]
