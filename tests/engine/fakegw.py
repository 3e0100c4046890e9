"""An in-memory gateway for engine tests: answers MockTransport requests in apimart's or MiniMax's shapes,
with task timing read from a FakeClock so hours of polling take milliseconds."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from hailuo_async import FakeClock, HttpRequest, HttpResponse, TransportError


@dataclass
class FakeTask:
    task_id: str
    prompt: str
    created: float
    duration: float
    fail: bool = False
    words: list[str] | None = None  # a script of status words (one per check), overriding the lifecycle
    checks: int = 0
    completed_seen_at: float | None = None


@dataclass
class FakeGateway:
    clock: FakeClock
    provider: str = "apimart"
    durations: Callable[[str], float] = lambda prompt: 60.0
    estimate_error: Callable[[float], float] = lambda true: true
    tasks: dict[str, FakeTask] = field(default_factory=dict)
    posts: collections.Counter[str] = field(default_factory=collections.Counter)
    idempotency_keys: list[str | None] = field(default_factory=list)
    status_times: list[float] = field(default_factory=list)
    faults: list[Callable[[HttpRequest], HttpResponse | None]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for fault in list(self.faults):
            answer = fault(request)
            if answer is not None:
                return answer
        if request.route == "submit":
            return self._submit(request)
        if request.route == "status":
            return self._status(request)
        if request.route == "retrieve":
            file_id = request.path.rsplit("=", 1)[1]
            return _json(
                {"file": {"download_url": f"https://cdn.example/{file_id}.mp4"}, "base_resp": {"status_code": 0}}
            )
        raise AssertionError(f"unexpected request {request}")

    def _submit(self, request: HttpRequest) -> HttpResponse:
        body = msgspec.json.decode(request.body or b"{}")
        prompt = body.get("prompt", "")
        self.posts[prompt] += 1
        self.idempotency_keys.append(dict(request.headers).get("Idempotency-Key"))
        task_id = f"t{next(self._ids)}"
        self.tasks[task_id] = FakeTask(
            task_id, prompt, self.clock.monotonic(), self.durations(prompt), "FAIL" in prompt
        )
        if self.provider == "minimax":
            return _json({"task_id": task_id, "base_resp": {"status_code": 0, "status_msg": "success"}})
        return _json({"code": 200, "data": [{"status": "submitted", "task_id": task_id}]})

    def _status(self, request: HttpRequest) -> HttpResponse:
        task_id = (
            request.path.split("task_id=")[-1]
            if "task_id=" in request.path
            else request.path.split("/")[-1].split("?")[0]
        )
        task = self.tasks[task_id]
        task.checks += 1
        now = self.clock.monotonic()
        self.status_times.append(now)
        elapsed = now - task.created
        if task.words is not None:
            word = task.words[min(task.checks - 1, len(task.words) - 1)]
            done = word in ("completed", "Success")
        else:
            done = elapsed >= task.duration
            word = "completed" if done else ("pending" if elapsed < task.duration * 0.1 else "processing")
        if done and task.completed_seen_at is None:
            task.completed_seen_at = now
        if self.provider == "minimax":
            mm_word = {"completed": "Success", "pending": "Queueing", "processing": "Processing"}.get(word, word)
            if task.fail and done:
                return _json(
                    {
                        "task_id": task_id,
                        "status": "Fail",
                        "base_resp": {"status_code": 1027, "status_msg": "output sensitive"},
                    }
                )
            payload: dict[str, object] = {"task_id": task_id, "status": mm_word, "base_resp": {"status_code": 0}}
            if mm_word == "Success":
                payload["file_id"] = 900 + int(task_id[1:])
            return _json(payload)
        data: dict[str, object] = {
            "id": task_id,
            "status": word,
            "created": 1_700_000_000 + int(task.created),
            "estimated_time": int(self.estimate_error(task.duration)),
        }
        if word == "processing":
            running = max(elapsed - task.duration * 0.1, 0.0)
            data["progress"] = min(99, int(100 * running / (task.duration * 0.9)))
        if done and task.fail:
            data["status"] = "failed"
            data["error"] = {"code": 500, "message": "content rejected", "type": "content_policy_violation"}
        elif done:
            data["progress"] = 100
            data["result"] = {"videos": [{"url": [f"https://cdn.example/{task_id}.mp4"], "expires_at": 1_800_000_000}]}
        return _json({"code": 200, "data": data})

    def true_end(self, task_id: str) -> float:
        task = self.tasks[task_id]
        return task.created + task.duration


def _json(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status=status, headers=headers or {}, body=msgspec.json.encode(payload))


def rate_limited(retry_after: str = "3") -> HttpResponse:
    return _json(
        {"error": {"code": 429, "message": "too many requests", "type": "rate_limit_error"}},
        status=429,
        headers={"retry-after": retry_after},
    )


def not_sent(request: HttpRequest) -> HttpResponse:
    from hailuo_async import ConnectError

    raise ConnectError("connection refused (simulated)")


def maybe_sent(request: HttpRequest) -> HttpResponse:
    raise TransportError("connection dropped after the request was sent (simulated)", maybe_sent=True)


__all__ = ["FakeGateway", "FakeTask", "maybe_sent", "not_sent", "rate_limited"]
