"""Animate between two local images (first-last-frame mode).

The images are drawn here with Pillow. Each must be JPEG, PNG or WebP, with a short side over 300 px and an
aspect ratio between 2:5 and 5:2; the client checks that before sending anything and uploads each image once.

Run: ``.venv/bin/python examples/first_last_frame.py`` from the repository, after the README's first set-up command
(nothing to activate). It uses the built-in simulator unless ``APIMART_API_KEY`` is set, and saves into
``hailuo-output/first_last_frame/``. The two images go to its ``frames/`` folder.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from _common import open_client, output_folder
from PIL import Image, ImageDraw


def draw(path: Path, sky: tuple[int, int, int], sun_height: int) -> Path:
    image = Image.new("RGB", (768, 432), sky)
    pen = ImageDraw.Draw(image)
    pen.ellipse([480, sun_height, 560, sun_height + 80], fill=(255, 210, 80))
    pen.rectangle([0, 300, 768, 432], fill=(40, 80, 50))
    image.save(path)
    return path


def make_frames(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    first = draw(folder / "day.png", (90, 150, 230), sun_height=60)
    last = draw(folder / "sunset.png", (240, 130, 60), sun_height=250)
    return first, last


async def main() -> None:
    folder = output_folder(__file__)
    first, last = make_frames(folder / "frames")
    async with open_client() as client:
        video = await client.generate(
            "The sun sets behind the hills and the sky turns orange",
            first_frame=first,
            last_frame=last,
            download_to=folder,
        )
    print(f"frames: {first}, {last}")
    print(f"saved:  {video.path}")


if __name__ == "__main__":
    anyio.run(main)
