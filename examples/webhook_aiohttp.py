"""Results by webhook, in your own aiohttp web app: the provider calls back when each video is ready, so the
client needs almost no status requests; polling stays the safety net for a delivery that gets lost.

Run: ``.venv/bin/python examples/webhook_aiohttp.py`` from the repository, after the README's first set-up command
(nothing to activate). Without ``APIMART_API_KEY`` it uses the built-in simulator, which calls back as apimart does.
With a key, the provider must reach your app: set ``WEBHOOK_PUBLIC_URL`` to the https URL that forwards to
``WEBHOOK_PORT`` on this machine (a reverse proxy or a tunnel). Videos go to ``hailuo-output/webhook_aiohttp/``.

Your app mounts one route under ``Webhook.path`` (``/hailuo``) and hands every request to
``client.handle_webhook``, which checks it (an unguessable token in the path; toapis's signature) and answers.
"""

from __future__ import annotations

import os

import anyio
from _common import PROVIDER, connection, output_folder
from aiohttp import web

from hailuo_async import Generation, HailuoClient, Webhook

PROMPTS = [
    "A paper boat drifts down a rain-soaked street [Tracking shot]",
    "Fireflies rise over a summer meadow at dusk [Pedestal up]",
    "A lighthouse beam sweeps across a stormy sea [Pan right]",
]


async def main() -> None:
    clients: list[HailuoClient] = []

    async def deliveries(request: web.Request) -> web.Response:
        """The route your app adds: every delivery goes to the client, which says what to answer."""
        reply = await clients[0].handle_webhook(request.method, request.path_qs, request.headers, await request.read())
        return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))

    app = web.Application()
    app.router.add_post("/hailuo/{rest:.*}", deliveries)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", int(os.environ.get("WEBHOOK_PORT", "0")))
    await site.start()
    public_url = os.environ.get("WEBHOOK_PUBLIC_URL") or f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with (
            connection() as target,
            HailuoClient(PROVIDER, **target, webhook=Webhook(public_url=public_url)) as client,
        ):
            clients.append(client)
            results = await client.gather_generations(PROMPTS, download_to=output_folder(__file__))
            stats = client.statistics()
    finally:
        await runner.cleanup()
    for video in results:
        print(f"saved: {video.path}" if isinstance(video, Generation) else f"failed: {video}")
    print(f"{len(results)} videos, {stats.status_requests} status requests (the webhook brought the rest)")


if __name__ == "__main__":
    anyio.run(main)
