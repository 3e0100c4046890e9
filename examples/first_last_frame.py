"""Animate between two local images (first-last-frame mode).

The images are drawn here with Pillow. Each must be JPEG, PNG or WebP, with a short side over 300 px and an
aspect ratio between 2:5 and 5:2; the client checks that before sending anything and uploads each image once.

Run: ``python examples/first_last_frame.py`` (uses the built-in simulator unless ``APIMART_API_KEY`` is set).
"""

from __future__ import annotations

from pathlib import Path

import anyio
from _common import open_client
from PIL import Image, ImageDraw


def draw(path: Path, sky: tuple[int, int, int], sun_height: int) -> Path:
    image = Image.new("RGB", (768, 432), sky)
    pen = ImageDraw.Draw(image)
    pen.ellipse([480, sun_height, 560, sun_height + 80], fill=(255, 210, 80))
    pen.rectangle([0, 300, 768, 432], fill=(40, 80, 50))
    image.save(path)
    return path


def make_frames() -> tuple[Path, Path]:
    Path("frames").mkdir(exist_ok=True)
    first = draw(Path("frames/day.png"), (90, 150, 230), sun_height=60)
    last = draw(Path("frames/sunset.png"), (240, 130, 60), sun_height=250)
    return first, last


async def main() -> None:
    first, last = make_frames()
    async with open_client() as client:
        video = await client.generate(
            "The sun sets behind the hills and the sky turns orange",
            first_frame=first,
            last_frame=last,
            download_to="videos",
        )
    print(f"saved: {video.path}")


if __name__ == "__main__":
    anyio.run(main)
