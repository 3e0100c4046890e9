"""The API app: the three providers on one port under ``/apimart``, ``/toapis`` and ``/minimax``, plus ``/_sim``.

Every provider route runs the same pipeline: count the request → (submit: read and count the body) → faults
(latency, drop, 5xx, malformed) → authentication → rate limit (:mod:`._limits`) → the route's own work. The dialects in
:mod:`._providers` supply the wording. A path or method no route serves under a provider's prefix gets that
provider's JSON error envelope (404 / 405; MiniMax ``base_resp``), counted as ``<provider>.unknown``.

A submit that asks for webhooks (apimart ``webhook``, toapis ``metadata.callback_url``, MiniMax ``callback_url``)
hands its task to the app's :class:`~._webhooks.WebhookSender`, which the app starts and stops with itself; a MiniMax
submit first has the sender check the callback URL with its challenge.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import BodyPartReader, web
from aiohttp.typedefs import Handler

from ._cdn import sign_video_url
from ._config import DriftShape, SimulatorConfig
from ._limits import retry_after
from ._providers import APIMART_RESPONSE_VERSION, MODELS, Apimart, Dialect, ErrorKind, Minimax, ModelSpec, Toapis
from ._state import Counters, LiveTask, SimState, parse_markers
from ._webhooks import Problem, WebhookSender, callback_target

__all__ = ["build_api_app"]

_SERVER_ERRORS = (500, 502, 503)
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
_IMAGE_TYPES = "Unsupported image type. Allowed: JPEG, PNG, WebP, GIF"
_NO_JSON = object()


class _Ctx:
    __slots__ = ("api_key", "body")

    def __init__(self, api_key: str, body: Any) -> None:
        self.api_key = api_key
        self.body = body


_Handler = Callable[[web.Request, _Ctx, Dialect], Awaitable[web.Response]]


def _sniff_image(data: bytes) -> tuple[str, str] | None:
    """(MIME type, extension) from the magic bytes, for the four accepted formats."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif", "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return None


def _merge(base: Any, changes: Any) -> Any:
    if isinstance(base, dict) and isinstance(changes, dict):
        return {**base, **{key: _merge(base.get(key), value) for key, value in changes.items()}}
    return changes


def _dropped(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _drift(task: LiveTask, config: SimulatorConfig) -> frozenset[DriftShape]:
    """The drift shapes ``task`` answers in: the enabled ones for about half of the tasks, none for the others."""
    return config.drift_shapes() if task.alt else frozenset()


class _Api:
    def __init__(self, state: SimState) -> None:
        self.state = state
        self.apimart = Apimart()
        self.toapis = Toapis()
        self.minimax = Minimax(lambda: state.config.minimax_http_errors)
        self.webhooks = WebhookSender(state)
        self._request_ids = itertools.count(1)
        self._request_id_prefix = os.urandom(8).hex()

    # -- responses ---------------------------------------------------------------------------------------------

    def respond(
        self,
        dialect: Dialect,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        *,
        versioned: bool = False,
    ) -> web.Response:
        """A JSON answer with the dialect's request-id header. ``versioned``: apimart's newer response version,
        which also puts the request id in the body (``request_id``) and echoes the version header."""
        request_id = f"{self._request_id_prefix}{next(self._request_ids):016x}"
        if dialect is not self.minimax:
            request_id = f"req_{request_id}"
        all_headers = {dialect.request_id_header: request_id}
        if versioned:
            body = {**body, "request_id": request_id}
            all_headers["X-APIMart-Response-Version"] = APIMART_RESPONSE_VERSION
        if headers:
            all_headers.update(headers)
        return web.Response(
            status=status,
            body=msgspec.json.encode(body),
            content_type="application/json",
            headers=all_headers,
        )

    def error(
        self,
        dialect: Dialect,
        kind: ErrorKind,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        status, body = dialect.error(kind, message)
        return self.respond(dialect, status, body, headers)

    def drop(self, request: web.Request) -> web.Response:
        """Close the connection without answering (the returned response is never written)."""
        if request.transport is not None:
            request.transport.close()
        self.state.counters.dropped_connections += 1
        return web.Response()

    # -- the shared pipeline -----------------------------------------------------------------------------------

    def route(
        self, dialect: Dialect, kind: str, handler: _Handler, name: str | None = None
    ) -> Callable[[web.Request], Awaitable[Any]]:
        """The handler for one provider route; ``kind`` selects the faults, ``name`` (default ``kind``) the stats
        key ``<provider>.<name>``."""
        route_key = f"{dialect.name}.{name or kind}"
        state = self.state

        async def handle(request: web.Request) -> web.StreamResponse:
            counters = state.counters
            counters.requests_by_route[route_key] += 1
            state.inflight += 1
            if state.inflight > counters.max_concurrent_requests:
                counters.max_concurrent_requests = state.inflight
            try:
                response = await self._pipeline(request, dialect, kind, handler)
            finally:
                state.inflight -= 1
            if not _dropped(request):
                state.counters.responses_by_status[response.status] += 1
            return response

        return handle

    async def _pipeline(self, request: web.Request, dialect: Dialect, kind: str, handler: _Handler) -> web.Response:
        state = self.state
        config = state.config
        body: Any = None
        if kind == "submit":
            try:
                body = msgspec.json.decode(await request.read())
            except msgspec.DecodeError:
                body = _NO_JSON
            prompt = body.get("prompt") if isinstance(body, dict) else None
            state.counters.submits_by_prompt[prompt if isinstance(prompt, str) else ""] += 1
        faults = config.faults
        malformed = False
        if kind in faults.routes:
            rng = state.fault_rng
            latency = faults.latency
            delay = rng.uniform(*latency) if isinstance(latency, tuple) else latency
            if delay > 0:
                await asyncio.sleep(delay)
            if faults.drop and rng.random() < faults.drop:
                return self.drop(request)
            if faults.error_5xx and rng.random() < faults.error_5xx:
                status = rng.choice(_SERVER_ERRORS)
                return self.respond(dialect, status, dialect.server_error(status))
            malformed = bool(faults.malformed) and rng.random() < faults.malformed
        response = await self._authorized(request, dialect, kind, handler, body, config)
        if malformed and not _dropped(request):
            assert isinstance(response.body, bytes)
            response = web.Response(
                status=200,
                body=response.body[: len(response.body) // 2],
                content_type="application/json",
                headers={dialect.request_id_header: response.headers[dialect.request_id_header]},
            )
        return response

    async def _authorized(
        self,
        request: web.Request,
        dialect: Dialect,
        kind: str,
        handler: _Handler,
        body: Any,
        config: SimulatorConfig,
    ) -> web.Response:
        scheme, _, api_key = request.headers.get("Authorization", "").partition(" ")
        api_key = api_key.strip()
        if scheme.lower() != "bearer" or not api_key:
            return self.error(dialect, "unauthorized")
        if api_key not in self.state.seen_keys:
            self.state.seen_keys.add(api_key)
        if config.keys is not None and api_key not in config.keys:
            return self.error(dialect, "invalid_key")
        limit = config.rate_limit
        if limit is not None and kind != "upload":
            wait = self.state.limiters.take(dialect.name, api_key, limit)
            if wait is not None:
                self.state.counters.rate_limited += 1
                headers = {"Retry-After": retry_after(wait, limit.retry_after)}
                return self.error(dialect, "rate_limited", headers=headers)
        return await handler(request, _Ctx(api_key, body), dialect)

    # -- provider routes ---------------------------------------------------------------------------------------

    def versioned(self, request: web.Request, dialect: Dialect) -> bool:
        """Whether an apimart request asks for the newer response version (any other value: the legacy one)."""
        return dialect is self.apimart and request.headers.get("X-APIMart-Response-Version") == APIMART_RESPONSE_VERSION

    async def submit(self, request: web.Request, ctx: _Ctx, dialect: Dialect) -> web.Response:
        state = self.state
        config = state.config
        store = state.store
        body = ctx.body
        if not isinstance(body, dict):
            return self.error(dialect, "invalid", "request body must be a JSON object")
        normalized = dialect.validate(body)
        if isinstance(normalized, str):
            return self.error(dialect, "invalid", normalized)
        callback = callback_target(dialect.name, body, config)
        if isinstance(callback, Problem):
            return self.error(dialect, "invalid", callback.message)
        markers = parse_markers(normalized.prompt)
        if markers.reject:
            return self.error(dialect, "rejected")
        # MiniMax checks the callback URL before the task exists: no echo, no task (base_resp 2013).
        if callback is not None and dialect is self.minimax and not await self.webhooks.challenge(callback):
            return self.error(dialect, "invalid", "fail to check callback url")
        versioned = self.versioned(request, dialect)
        idempotency_key = request.headers.get("Idempotency-Key") or None
        dedupe = idempotency_key is not None and dialect is self.apimart and config.idempotency
        fingerprint = msgspec.json.encode(body, order="sorted") if dedupe else b""
        slot = (dialect.name, ctx.api_key, idempotency_key or "")
        if dedupe:
            if slot in store.idempotency_pending:
                return self.error(dialect, "in_progress", headers={"Retry-After": "1"})
            if slot in store.idempotency:
                first_body, first_task = store.idempotency[slot]
                if first_body != fingerprint:
                    return self.error(dialect, "conflict")
                state.counters.idempotent_replays += 1
                return self.submitted(dialect, first_task, config, versioned, replayed=True)
            store.idempotency_pending.add(slot)
        try:
            if config.submit_delay > 0:
                await asyncio.sleep(config.submit_delay)
            if not store.credits_left(ctx.api_key, config.credits):
                return self.error(dialect, "no_credits")
            task = store.create(
                provider=dialect.name,
                model=normalized.model,
                prompt=normalized.prompt,
                request=body,
                api_key=ctx.api_key,
                idempotency_key=idempotency_key,
                client_business_id=normalized.client_business_id,
                resolution=normalized.resolution,
                markers=markers,
                config=config,
                unified_id=versioned,
            )
            if dedupe:
                store.idempotency[slot] = (fingerprint, task)
        finally:
            if dedupe:
                store.idempotency_pending.discard(slot)
        state.counters.tasks_created += 1
        state.counters.tasks_created_by_prompt[task.prompt] += 1
        if callback is not None:
            self.webhooks.watch(task, callback)
        drop = config.faults.submit_then_drop
        if drop and state.fault_rng.random() < drop:
            return self.drop(request)
        return self.submitted(dialect, task, config, versioned, replayed=False)

    def submitted(
        self, dialect: Dialect, task: LiveTask, config: SimulatorConfig, versioned: bool, *, replayed: bool
    ) -> web.Response:
        """The submit answer for ``task``: the legacy shape (HTTP 200), or apimart's newer one (HTTP 202, with
        ``Idempotency-Replayed: true`` when it replays an earlier request's task)."""
        if not versioned:
            return self.respond(dialect, 200, dialect.submit_body(task, _drift(task, config)))
        headers = {"Idempotency-Replayed": "true"} if replayed else None
        return self.respond(dialect, 202, Apimart.versioned_submit_body(task), headers, versioned=True)

    async def status(self, request: web.Request, ctx: _Ctx, dialect: Dialect) -> web.Response:
        state = self.state
        if dialect is self.minimax:
            task_id = request.query.get("task_id", "")
            if not task_id:
                return self.error(dialect, "invalid", "task_id is required")
        else:
            task_id = request.match_info["task_id"]
        task = state.store.get(dialect.name, task_id, ctx.api_key)
        if task is None and dialect is self.toapis:
            task = state.store.get_by_client_id(dialect.name, task_id, ctx.api_key)
            if task is not None:
                state.counters.client_id_lookups += 1
        if task is None:
            return self.error(dialect, "not_found")
        now = state.timebase.now()
        task_state, progress = task.state(now)
        video = None
        if task_state == "completed" and dialect is not self.minimax:
            video = sign_video_url(state, task.task_id, dialect.name)
        body = dialect.status_body(task, task_state, progress, video, _drift(task, state.config), now)
        return self.respond(dialect, 200, body, versioned=self.versioned(request, dialect))

    async def retrieve(self, request: web.Request, ctx: _Ctx, dialect: Dialect) -> web.Response:
        state = self.state
        file_id = request.query.get("file_id", "")
        if not file_id.isdigit():
            return self.error(dialect, "invalid", "file_id is required")
        task = state.store.by_file_id.get(int(file_id))
        if task is None or task.api_key != ctx.api_key or task.state(state.timebase.now())[0] != "completed":
            return self.error(dialect, "not_found", "file not found")
        url, _ = sign_video_url(state, task.task_id, dialect.name)
        return self.respond(dialect, 200, self.minimax.retrieve_body(task, url))

    async def upload(self, request: web.Request, ctx: _Ctx, dialect: Dialect) -> web.Response:
        state = self.state
        limit = dialect.upload_limit
        data: bytes | None = None
        filename = "upload"
        if request.content_type.startswith("multipart/"):
            try:
                reader = await request.multipart()
                while (part := await reader.next()) is not None:
                    if isinstance(part, BodyPartReader) and part.name == "file":
                        filename = part.filename or filename
                        buffer = bytearray()
                        while chunk := await part.read_chunk():
                            buffer += chunk
                            if len(buffer) > limit:
                                status, body = dialect.upload_error(
                                    f"Image too large. Maximum size is {limit // (1024 * 1024)}MB", True
                                )
                                return self.respond(dialect, status, body)
                        data = bytes(buffer)
                        break
            except ValueError:
                data = None
        if data is None:
            status, body = dialect.upload_error("Missing file field 'file'", False)
            return self.respond(dialect, status, body)
        sniffed = _sniff_image(data)
        if sniffed is None:
            status, body = dialect.upload_error(_IMAGE_TYPES, False)
            return self.respond(dialect, status, body)
        mime, extension = sniffed
        upload_id = f"upload_{self._request_id_prefix[:8]}{len(state.uploads):08x}"
        safe_name = _UNSAFE_FILENAME.sub("_", filename)[-100:] or "upload"
        path = f"/uploads/{upload_id}-{safe_name}" if dialect is self.apimart else f"/uploads/{upload_id}.{extension}"
        state.uploads[path] = (data, mime, state.wall_now() + state.config.upload_url_ttl(dialect.name))
        url = state.cdn_base + path
        return self.respond(
            dialect, 200, dialect.upload_body(upload_id, url, filename, mime, len(data), state.wall_now())
        )

    # -- apimart discovery (shapes: see :class:`~._providers.Apimart`) -----------------------------------------

    async def models(self, request: web.Request, ctx: _Ctx, dialect: Dialect) -> web.Response:
        return self.respond(dialect, 200, self.apimart.models_body(self.state.wall_now()))

    def _model(self, request: web.Request, dialect: Dialect) -> ModelSpec | web.Response:
        name = request.query.get("model", "")
        if not name:
            return self.error(dialect, "invalid", "the model query parameter is required")
        spec = MODELS.get(name)
        return spec if spec is not None else self.error(dialect, "no_resource", f"model {name!r} not found")

    async def model_docs(self, request: web.Request, ctx: _Ctx, dialect: Dialect) -> web.Response:
        spec = self._model(request, dialect)
        if isinstance(spec, web.Response):
            return spec
        return self.respond(dialect, 200, self.apimart.docs_body(spec, self.state.wall_now()))

    async def model_schema(self, request: web.Request, ctx: _Ctx, dialect: Dialect) -> web.Response:
        spec = self._model(request, dialect)
        if isinstance(spec, web.Response):
            return spec
        operation = request.query.get("operation", "video_generation")
        if operation != "video_generation":
            message = f"{spec.name} supports only the video_generation operation, not {operation!r}"
            return self.error(dialect, "invalid", message)
        return self.respond(dialect, 200, self.apimart.schema_body(spec))

    # -- paths no route serves ---------------------------------------------------------------------------------

    @web.middleware
    async def unknown_routes(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Turn the router's plain-text 404 / 405 under a provider's prefix into that provider's error envelope."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            prefix, _, rest = request.path.lstrip("/").partition("/")
            dialect = {"apimart": self.apimart, "toapis": self.toapis, "minimax": self.minimax}.get(prefix)
            if dialect is None or exc.status not in (404, 405):
                raise
            counters = self.state.counters
            counters.requests_by_route[f"{dialect.name}.unknown"] += 1
            described = f"{request.method} /{rest}"
            if exc.status == 404:
                response = self.error(dialect, "no_resource", f"no route for {described}")
            else:
                allow = exc.headers.get("Allow", "")
                response = self.error(dialect, "bad_method", f"method not allowed: {described}", {"Allow": allow})
            counters.responses_by_status[response.status] += 1
            return response

    # -- /_sim control endpoints -------------------------------------------------------------------------------

    async def sim_stats(self, request: web.Request) -> web.Response:
        return web.json_response(body=msgspec.json.encode(self.state.counters.snapshot()))

    async def sim_reset(self, request: web.Request) -> web.Response:
        self.state.counters = Counters()
        return web.json_response(body=msgspec.json.encode(self.state.counters.snapshot()))

    async def sim_tasks(self, request: web.Request) -> web.Response:
        timebase = self.state.timebase
        tasks = [task.snapshot(timebase) for task in self.state.store.tasks.values()]
        return web.json_response(body=msgspec.json.encode(tasks))

    async def sim_webhook_test(self, request: web.Request) -> web.Response:
        """Send toapis' signed ``endpoint.test`` event to ``{"url": ...}`` (default: ``toapis_default_url``)."""
        try:
            body = msgspec.json.decode(await request.read()) if request.can_read_body else {}
        except msgspec.DecodeError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        url = body.get("url") if isinstance(body, dict) else None
        url = url if url is not None else self.state.config.webhooks.toapis_default_url
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return web.json_response({"error": "give an http(s) url, or set webhooks.toapis_default_url"}, status=400)
        event_id, status = await self.webhooks.send_test(url)
        return web.json_response({"event_id": event_id, "status": status})

    async def sim_config(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                changes = msgspec.json.decode(await request.read())
                merged = _merge(msgspec.to_builtins(self.state.config), changes)
                self.state.config = msgspec.convert(merged, SimulatorConfig)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(body=self.state.config.to_json())


def build_api_app(state: SimState) -> web.Application:
    api = _Api(state)
    # Large enough for a MiniMax submit with two base64 frames; aiohttp answers 413 beyond it.
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[api.unknown_routes])
    app.on_startup.append(api.webhooks.start)
    app.on_shutdown.append(api.webhooks.stop)
    app.on_cleanup.append(api.webhooks.close)
    add = app.router.add_route
    for dialect, prefix in ((api.apimart, "/apimart"), (api.toapis, "/toapis")):
        add("POST", f"{prefix}/v1/videos/generations", api.route(dialect, "submit", api.submit))
        add("POST", f"{prefix}/v1/uploads/images", api.route(dialect, "upload", api.upload))
    add("GET", "/apimart/v1/tasks/{task_id}", api.route(api.apimart, "status", api.status))
    add("GET", "/apimart/v1/models", api.route(api.apimart, "discovery", api.models, "models"))
    add("GET", "/apimart/v1/model-docs", api.route(api.apimart, "discovery", api.model_docs, "model_docs"))
    add("GET", "/apimart/v1/model-schema", api.route(api.apimart, "discovery", api.model_schema, "model_schema"))
    add("GET", "/toapis/v1/videos/generations/{task_id}", api.route(api.toapis, "status", api.status))
    add("POST", "/minimax/v1/video_generation", api.route(api.minimax, "submit", api.submit))
    add("GET", "/minimax/v1/query/video_generation", api.route(api.minimax, "status", api.status))
    add("GET", "/minimax/v1/files/retrieve", api.route(api.minimax, "retrieve", api.retrieve))
    add("GET", "/_sim/stats", api.sim_stats)
    add("POST", "/_sim/reset", api.sim_reset)
    add("GET", "/_sim/tasks", api.sim_tasks)
    add("GET", "/_sim/config", api.sim_config)
    add("POST", "/_sim/config", api.sim_config)
    add("POST", "/_sim/webhooks/test", api.sim_webhook_test)
    return app
