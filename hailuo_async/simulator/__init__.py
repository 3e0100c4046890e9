"""A local HTTP simulator of the three Hailuo-02 providers (apimart, toapis, official MiniMax), with faults.

Test your own code against it: it is a real ``aiohttp.web`` server, written from the wire reference
(``providers.md``) independently of the ``hailuo_async`` client, so it doubles as an oracle for the client.

.. code-block:: python

    async with Simulator(SimulatorConfig(faults=Faults(error_5xx=0.1))) as sim:
        sim.urls.apimart   # http://127.0.0.1:P/apimart  (+ /v1/videos/generations, /v1/tasks/{id}, ...)
        sim.urls.toapis    # http://127.0.0.1:P/toapis
        sim.urls.minimax   # http://127.0.0.1:P/minimax
        sim.urls.cdn       # http://127.0.0.1:Q  (another port, so another origin)
        sim.stats(); sim.tasks; sim.update_config(faults=Faults())

Or from a shell: ``python -m hailuo_async.simulator [--port N] [--cdn-port N] [--config JSON|FILE]`` prints one
JSON line with the base URLs and serves until SIGINT/SIGTERM.

**Prompt markers** make a task's outcome deterministic (they stay part of the prompt):

- ``{{sim:fail}}``: the task fails with a content-policy error (apimart ``error.type`` ``content_policy_violation``;
  toapis ``error.code`` ``generation_failed``; MiniMax ``status`` ``Fail`` with ``base_resp`` 1027
  ``output new_sensitive``);
- ``{{sim:time=2.5}}``: the task takes exactly 2.5 s from submit to completion;
- ``{{sim:hang}}``: the task never finishes (running, progress stops at 99);
- ``{{sim:reject}}``: the submit itself is refused as sensitive input (apimart 400 ``content_policy_violation``,
  toapis 422 ``content_policy_violation``, MiniMax ``base_resp`` 1026).

**Lifecycle.** queued (``queue_fraction`` of the generation time) → running (progress 0 → 99, linear) → completed
or failed. Words per provider: apimart ``pending``/``processing``/``completed``/``failed``; toapis
``queued``/``in_progress``/``completed``/``failed``; MiniMax ``Preparing``/``Queueing``/``Processing``/``Success``/
``Fail``. With ``drift=True`` about half of the tasks (a seeded per-task draw) use the other documented shapes: apimart
``submitted``/``in_progress`` and ``url`` as a plain string; toapis ``pending`` (submit) / ``submitted`` (queued)
and ``result.url``; MiniMax a numeric ``file_id`` in the query.

**Video URLs** point at the CDN port, are signed (``?exp=&sig=``) and answer 403 once expired (after ``url_ttl``);
every status poll of a completed task returns a freshly signed URL.

**Stats** (``sim.stats()`` or ``GET /_sim/stats``): route keys in ``requests_by_route`` are ``apimart.submit``,
``apimart.status``, ``apimart.upload``, ``toapis.submit``, ``toapis.status``, ``toapis.upload``,
``minimax.submit``, ``minimax.status``, ``minimax.retrieve``, ``cdn.video``, ``cdn.upload`` and ``cdn.other``.
Other control endpoints on the API port: ``POST /_sim/reset``, ``GET /_sim/tasks``, ``GET /_sim/config`` and
``POST /_sim/config`` (a JSON object merged into the current config).
"""

from ._config import Faults, GenerationTimes, RateLimit, SimulatorConfig
from ._server import Simulator, SimulatorUrls
from ._state import SimTask, SimulatorStats

__all__ = [
    "Faults",
    "GenerationTimes",
    "RateLimit",
    "SimTask",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "SimulatorUrls",
]
