"""The baseline: what users write today to generate many Hailuo-02 videos through apimart.

One asyncio task per item, as in the providers' own examples and the MiniMax tooling: submit with aiohttp under a
semaphore, then poll that one task on its own at a fixed interval (2 s is apimart's recommendation, 10 s toapis's).
It is written to be a fair reference, not a straw man:

- one shared :class:`aiohttp.ClientSession` (aiohttp's default connection pool), JSON parsed with the stdlib;
- the same number of submits in flight as the library gets (``concurrency``);
- a 429 is honoured: sleep ``Retry-After`` and send that same request again;
- a 5xx (or a network error) on a status check is retried at the next interval;
- a failed submit is an item failure, never retried (a naive but money-safe script: a retried POST may pay twice);
- it gives up on a task after ``max_wait`` seconds (apimart's own client stops after 10 minutes).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

__all__ = ["BaselineOutcome", "run_baseline"]

MODEL = "MiniMax-Hailuo-02"


class BaselineOutcome:
    """What happened to one item: ``kind`` is ``completed``, ``failed`` (the provider said so), ``submit_error``
    or ``timeout``; ``task_id`` is set once the submit succeeded."""

    __slots__ = ("detail", "kind", "task_id", "video_url")

    def __init__(self, kind: str, task_id: str | None = None, video_url: str | None = None, detail: str = "") -> None:
        self.kind = kind
        self.task_id = task_id
        self.video_url = video_url
        self.detail = detail


def _retry_after(response: aiohttp.ClientResponse) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


async def run_baseline(
    base_url: str,
    api_key: str,
    prompts: Sequence[str],
    *,
    interval: float,
    concurrency: int,
    max_wait: float = 600.0,
    on_result: Callable[[BaselineOutcome], None] | None = None,
) -> list[BaselineOutcome]:
    """Generate every prompt (5 s, 768p) and return one outcome per prompt, in order.

    ``on_result`` is called with each outcome the moment it is known (right after the status answer that told it)."""
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    semaphore = asyncio.Semaphore(concurrency)

    async with aiohttp.ClientSession(headers=headers) as session:

        async def submit(prompt: str) -> str:
            body = json.dumps({"model": MODEL, "prompt": prompt, "duration": 5, "resolution": "768p"})
            while True:
                async with session.post(f"{base_url}/v1/videos/generations", data=body) as response:
                    if response.status == 429:
                        await asyncio.sleep(_retry_after(response))
                        continue
                    text = await response.text()
                    if response.status != 200:
                        raise RuntimeError(f"submit answered HTTP {response.status}: {text[:200]}")
                    answer: dict[str, Any] = json.loads(text)
                    return str(answer["data"][0]["task_id"])

        async def check(task_id: str) -> dict[str, Any] | None:
            """The task's ``data`` object, or None when this check failed (5xx, network) and should be retried."""
            while True:
                try:
                    async with session.get(f"{base_url}/v1/tasks/{task_id}") as response:
                        if response.status == 429:
                            await asyncio.sleep(_retry_after(response))
                            continue
                        if response.status != 200:
                            return None
                        answer: dict[str, Any] = json.loads(await response.text())
                        data: dict[str, Any] = answer["data"]
                        return data
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    return None

        async def generate(prompt: str) -> BaselineOutcome:
            try:
                async with semaphore:
                    task_id = await submit(prompt)
            except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, ValueError, KeyError, IndexError) as exc:
                return BaselineOutcome("submit_error", detail=f"{type(exc).__name__}: {exc}")
            started = time.monotonic()
            while time.monotonic() - started < max_wait:
                await asyncio.sleep(interval)
                data = await check(task_id)
                if data is None:
                    continue
                if data["status"] == "completed":
                    url = data["result"]["videos"][0]["url"]
                    return BaselineOutcome("completed", task_id, url[0] if isinstance(url, list) else url)
                if data["status"] == "failed":
                    return BaselineOutcome("failed", task_id, detail=str(data.get("error")))
            return BaselineOutcome("timeout", task_id)

        async def generate_and_report(prompt: str) -> BaselineOutcome:
            outcome = await generate(prompt)
            if on_result is not None:
                on_result(outcome)
            return outcome

        return list(await asyncio.gather(*(generate_and_report(prompt) for prompt in prompts)))
