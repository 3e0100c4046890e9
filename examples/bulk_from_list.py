"""Generate a list of prompts concurrently; one failure never stops the others.

Run: ``.venv/bin/python examples/bulk_from_list.py`` from the repository, after the README's first set-up command
(nothing to activate). It uses the built-in simulator unless ``APIMART_API_KEY`` is set, and saves into
``hailuo-output/bulk_from_list/``.
"""

from __future__ import annotations

import anyio
from _common import open_client, output_folder

from hailuo_async import Generation

PROMPTS = [
    "A lighthouse on a cliff, waves crashing below [Push in]",
    "Hot air balloons rising over a desert canyon [Pan left, Pedestal up]",
    "A barista pours latte art in slow motion [Zoom in]",
    "Rain on a neon-lit street at night [Truck right]",
    "A paper boat drifting down a gutter stream [Tracking shot]",
    "Northern lights over a frozen lake [Tilt up]",
    "A whale breaching next to a small sailboat [Zoom out]",
    "A field of sunflowers swaying in the breeze [Pan left]",
]


async def main() -> None:
    async with open_client(max_concurrency=4) as client:
        # return_exceptions=True: a failed item's slot holds its exception instead of raising BatchError.
        results = await client.gather_generations(PROMPTS, return_exceptions=True, download_to=output_folder(__file__))
        stats = client.statistics()
    for prompt, result in zip(PROMPTS, results, strict=True):
        if isinstance(result, Generation):
            print(f"ok      {prompt[:40]:<40}  {result.path}")
        else:
            print(f"failed  {prompt[:40]:<40}  {type(result).__name__}: {result}")
    print(f"{stats.completed} done, {stats.failed} failed, {stats.requests} API requests")


if __name__ == "__main__":
    anyio.run(main)
