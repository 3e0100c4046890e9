"""Generate one video and save it.

Run: ``.venv/bin/python examples/generate_one.py`` from the repository, after the README's first set-up command
(nothing to activate). It uses the built-in simulator unless ``APIMART_API_KEY`` is set, and saves into
``hailuo-output/generate_one/``.
"""

from __future__ import annotations

import anyio
from _common import open_client, output_folder


async def main() -> None:
    async with open_client() as client:
        video = await client.generate(
            "A red fox trots across a snowy meadow at dawn [Tracking shot]",
            duration=10,
            resolution="768p",
            download_to=output_folder(__file__),
        )
    print(f"task:  {video.task_id}")
    print(f"url:   {video.video_url}")
    print(f"saved: {video.path}")


if __name__ == "__main__":
    anyio.run(main)
