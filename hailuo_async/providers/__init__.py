"""Provider codecs: one pure module per provider behind the :class:`Provider` interface.

``get_provider("apimart" | "toapis" | "minimax")`` returns the shared, stateless codec instance; ``RULES`` /
``rules_for(provider, model)`` hold what each model accepts on each provider (:class:`ModelRules`);
:class:`WebhookEvent` is what a codec reads from a webhook delivery.
"""

from __future__ import annotations

from ._base import MODEL, Provider, WebhookEvent, WebhookKind, map_status_word
from ._rules import RULES, ModelRules, rules_for
from .apimart import Apimart
from .minimax import Minimax
from .toapis import Toapis

__all__ = [
    "MODEL",
    "PROVIDERS",
    "RULES",
    "Apimart",
    "Minimax",
    "ModelRules",
    "Provider",
    "Toapis",
    "WebhookEvent",
    "WebhookKind",
    "get_provider",
    "map_status_word",
    "rules_for",
]

PROVIDERS: dict[str, Provider] = {p.name: p for p in (Apimart(), Toapis(), Minimax())}
"""Every built-in provider by name."""


def get_provider(name: str) -> Provider:
    """The codec for ``name``; raises :class:`~hailuo_async.InvalidRequestError` for an unknown name."""
    provider = PROVIDERS.get(name.strip().lower()) if isinstance(name, str) else None
    if provider is None:
        from .._exceptions import InvalidRequestError

        raise InvalidRequestError("provider", name, "one of " + ", ".join(sorted(PROVIDERS)))
    return provider
