"""A local HTTP simulator of the three Hailuo providers (apimart, toapis, official MiniMax), with faults.

Test your own code against it: it is a real ``aiohttp.web`` server, written from the providers' wire facts
(``docs/providers.md``) independently of the ``hailuo_async`` client, so it doubles as an oracle for the client.

.. code-block:: python

    async with Simulator(SimulatorConfig(faults=Faults(error_5xx=0.1))) as sim:
        sim.urls.apimart   # http://127.0.0.1:P/apimart  (+ /v1/videos/generations, /v1/tasks/{id}, ...)
        sim.urls.toapis    # http://127.0.0.1:P/toapis
        sim.urls.minimax   # http://127.0.0.1:P/minimax
        sim.urls.cdn       # http://127.0.0.1:Q  (another port, so another origin)
        sim.stats(); sim.tasks; sim.update_config(faults=Faults())

Or from a shell: ``python -m hailuo_async.simulator [--port N] [--cdn-port N] [--config JSON|FILE] [--drift ...]
[--submit-delay S] [--progress SHAPE] [--queue-fraction SHARE|LOW,HIGH] [--webhook-...]`` prints one JSON line with
the base URLs and serves until SIGINT/SIGTERM.

**Models.** ``MiniMax-Hailuo-02`` (512P/768P/1080P; first and last frame), ``MiniMax-Hailuo-2.3`` (768P/1080P;
text or image-to-video) and ``MiniMax-Hailuo-2.3-Fast`` (as 2.3, image-to-video only), each validated in the
provider's own words: apimart durations 5 | 10 for Hailuo-02, otherwise 6 | 10; 1080P at the shorter one only.

**Beyond submit and status.**

- apimart: ``X-APIMart-Response-Version: 2026-07-27`` selects the newer answers (a submit is HTTP 202
  ``{"code":202,"data":{"id","status":"pending"},"request_id"}``, with ``Idempotency-Replayed: true`` on a replay;
  status answers gain ``request_id``). While a submit is being processed (``submit_delay``), a resend with the same
  ``Idempotency-Key`` gets 409 ``idempotency_in_progress`` and ``Retry-After: 1``. ``GET /v1/models``,
  ``/v1/model-docs?model=`` and ``/v1/model-schema?model=&operation=video_generation`` describe the models.
- toapis: a submit's ``client_business_id`` (top level or in ``metadata``) also names its task in
  ``GET /v1/videos/generations/{client_business_id}``, for the API key that submitted it (the most recent such
  submit if the id was reused).
- Any other path under a provider's prefix answers that provider's JSON error (404 or 405; MiniMax ``base_resp``
  2013, HTTP 200 unless ``minimax_http_errors``).

**Prompt markers** make a task's outcome deterministic (they stay part of the prompt):

- ``{{sim:fail}}``: the task fails with a content-policy error (apimart ``error.type`` ``content_policy_violation``;
  toapis ``error.code`` ``generation_failed``; MiniMax ``status`` ``Fail`` with ``base_resp`` 1027
  ``output new_sensitive``);
- ``{{sim:time=2.5}}``: the task takes exactly 2.5 s from submit to completion;
- ``{{sim:hang}}``: the task never finishes (running; progress stops at the shape's last value, 99 for ``linear``);
- ``{{sim:reject}}``: the submit itself is refused as sensitive input (apimart 400 ``content_policy_violation``,
  toapis 422 ``content_policy_violation``, MiniMax ``base_resp`` 1026).

**Lifecycle** (:mod:`._lifecycle`). Each task draws its total time from ``generation`` (:class:`GenerationTimes`:
log-normal with a long tail, uniform, bimodal or fixed) and its queued share from ``queue_fraction`` (one number or a
``(low, high)`` range), both seeded. It is queued (progress 0) for that share → running, reporting progress in the
``progress`` shape (:class:`Progress`: ``linear`` 0 → 99 by default, ``none``, ``steps``, ``concave``, ``convex``,
``stall``) → completed (100) or failed. Words per provider: apimart ``pending``/``processing``/``completed``/
``failed``; toapis ``queued``/``in_progress``/``completed``/``failed``; MiniMax ``Preparing``/``Queueing``/
``Processing``/``Success``/``Fail`` (in progress with ``"file_id": ""`` and a 0 x 0 size, and no progress at all).
With ``drift`` on, about half of the tasks (a seeded per-task draw) answer in the documented drift shapes, all of
them (``drift=True``) or those named in :data:`DRIFT_SHAPES` (e.g. ``drift=frozenset({"apimart_url_string"})``).

**Video URLs** point at the CDN port, are signed (``?exp=&sig=``) and answer 403 once expired: after each provider's
documented lifetime (apimart 72 h, toapis 24 h, MiniMax 9 h) unless ``url_ttl`` says otherwise. Every status poll of
a completed task returns a freshly signed URL. Uploaded images expire the same way (``upload_ttl``).

**Rate limits** (:mod:`._limits`). ``rate_limit=RateLimit(kind=..., rate=...)`` limits each (provider, API key) on
every API route but uploads: a token bucket (``burst``), a fixed window or a sliding window (``window`` seconds,
``rate * window`` requests each). A limited request gets apimart's or toapis' 429 or MiniMax's ``base_resp`` 1002,
with a ``Retry-After`` that tells the true wait (whole seconds, or milliseconds with ``retry_after="exact"``), and
is counted in ``rate_limited``.

**Webhooks** (:mod:`._webhooks`, configured by ``webhooks``: :class:`Webhooks`). A submit that names a callback URL
gets the provider's documented webhooks: apimart (top-level ``webhook``) POSTs its ``GET /v1/tasks/{id}`` answer to
``<webhook>/callback`` once the task completes or fails; toapis (``metadata.callback_url``) POSTs a
``generation.completed`` / ``generation.failed`` event signed with ``X-ToAPIs-Webhook-Id``, ``-Timestamp`` and
``-Signature: v1=<hex>[,v1=<hex>]`` (HMAC-SHA256 with ``toapis_secret``, and ``toapis_previous_secret`` after a
rotation, over ``id.timestamp.body``); MiniMax (``callback_url``) first POSTs ``{"challenge": ...}`` and creates the
task only if the answer echoes it within ``challenge_timeout`` (otherwise ``base_resp`` 2013 "invalid params, fail
to check callback url" and no task), then POSTs ``processing`` and ``success`` / ``failed``. Seeded faults:
``drop``, ``duplicate``, ``delay``, ``reorder``; a timeout, connection error or 5xx is retried after each of
``retry_delays`` (10, 30, 60 s by default), a 4xx never. ``POST /_sim/webhooks/test`` with ``{"url": ...}`` sends
toapis' ``endpoint.test`` event. Loopback URLs on any port are accepted (``apimart_port_check`` refuses other
hosts' ports but 80 and 443, as apimart does), and toapis' same-origin rule applies once ``toapis_default_url`` is
set. Stopping the simulator cancels every pending delivery.

**Stats** (``sim.stats()`` or ``GET /_sim/stats``): route keys in ``requests_by_route`` are ``apimart.submit``,
``apimart.status``, ``apimart.upload``, ``apimart.models``, ``apimart.model_docs``, ``apimart.model_schema``,
``toapis.submit``, ``toapis.status``, ``toapis.upload``, ``minimax.submit``, ``minimax.status``, ``minimax.retrieve``,
``<provider>.unknown``, ``cdn.video``, ``cdn.upload`` and ``cdn.other``; ``client_id_lookups`` counts toapis status
requests answered through a ``client_business_id``; ``webhooks_sent`` (POSTs, every attempt), ``webhooks_delivered``
(answered 2xx), ``webhooks_failed`` (given up), ``webhooks_dropped``, ``webhooks_retried``, ``webhooks_duplicated``,
``webhook_challenges`` and ``webhook_challenges_failed`` count the webhooks.
Other control endpoints on the API port: ``POST /_sim/reset``, ``GET /_sim/tasks``, ``GET /_sim/config``,
``POST /_sim/config`` (a JSON object merged into the current config) and ``POST /_sim/webhooks/test``.
"""

from ._config import DRIFT_SHAPES, Faults, GenerationTimes, Progress, RateLimit, SimulatorConfig, Webhooks
from ._server import Simulator, SimulatorUrls
from ._state import SimTask, SimulatorStats

__all__ = [
    "DRIFT_SHAPES",
    "Faults",
    "GenerationTimes",
    "Progress",
    "RateLimit",
    "SimTask",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "SimulatorUrls",
    "Webhooks",
]
