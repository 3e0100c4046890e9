"""Results by webhook, in your own Starlette or FastAPI app: the provider calls back when each video is ready, so
the client needs almost no status requests; polling stays the safety net for a delivery that gets lost.

Run: ``.venv/bin/pip install starlette uvicorn`` once, then ``.venv/bin/python examples/webhook_starlette.py`` from
the repository, after the README's first set-up command (nothing to activate). Without ``APIMART_API_KEY`` it uses
the built-in simulator, which calls back as apimart does. With a key, set ``WEBHOOK_PUBLIC_URL`` to the https URL
that forwards to ``WEBHOOK_PORT`` on this machine. Videos go to ``hailuo-output/webhook_starlette/``.

In FastAPI the route is the same: ``@app.post("/hailuo/{rest:path}")`` taking ``request: Request``.
"""

from __future__ import annotations

import os
import socket

import anyio
import uvicorn
from _common import PROVIDER, connection, output_folder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hailuo_async import Generation, HailuoClient, Webhook

PROMPTS = [
    "A paper boat drifts down a rain-soaked street [Tracking shot]",
    "Fireflies rise over a summer meadow at dusk [Pedestal up]",
]


async def main() -> None:
    clients: list[HailuoClient] = []

    async def deliveries(request: Request) -> Response:
        """The route your app adds: every delivery goes to the client, which says what to answer."""
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        reply = await clients[0].handle_webhook(request.method, path, request.headers, await request.body())
        return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))

    app = Starlette(routes=[Route("/hailuo/{rest:path}", deliveries, methods=["POST"])])
    listener = socket.socket()
    listener.bind(("127.0.0.1", int(os.environ.get("WEBHOOK_PORT", "0"))))
    public_url = os.environ.get("WEBHOOK_PUBLIC_URL") or f"http://127.0.0.1:{listener.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[listener]))
        try:
            async with (
                connection() as target,
                HailuoClient(PROVIDER, **target, webhook=Webhook(public_url=public_url)) as client,
            ):
                clients.append(client)
                results = await client.gather_generations(PROMPTS, download_to=output_folder(__file__))
                stats = client.statistics()
        finally:
            server.should_exit = True
    listener.close()
    for video in results:
        print(f"saved: {video.path}" if isinstance(video, Generation) else f"failed: {video}")
    print(f"{len(results)} videos, {stats.status_requests} status requests (the webhook brought the rest)")


if __name__ == "__main__":
    anyio.run(main)
