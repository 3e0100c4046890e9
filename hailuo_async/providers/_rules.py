"""What each model accepts on each provider: one frozen :class:`ModelRules` per (provider, model), as data.

:meth:`Provider.validate <hailuo_async.providers.Provider.validate>` refuses a request against its model's rules
before anything is sent, and the pricing (:mod:`hailuo_async._prices`) reads the same rules for the duration and
resolution a request without them gets. Every rule comes from the provider's documentation
(docs/providers.md, "Newer models per provider"); where a gateway's page for a model could not be found, the
official API's rules stand in.
"""

from __future__ import annotations

import msgspec

from .._exceptions import InvalidRequestError
from .._models import DEFAULT_MODEL, GenerationRequest, Mode

__all__ = ["ALL_MODES", "RULES", "ModelRules", "rules_for"]

ALL_MODES: tuple[Mode, ...] = ("text-to-video", "image-to-video", "first-last-frame")


def _either(values: tuple[object, ...]) -> str:
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


class ModelRules(msgspec.Struct, frozen=True, kw_only=True):
    """What one model accepts on one provider. Resolutions are spelled lower-case, as requests store them.

    Usage::

        rules = rules_for("minimax", "MiniMax-Hailuo-2.3")
        rules.check(request)                  # InvalidRequestError naming what is allowed
        duration, resolution = rules.effective(request)
    """

    provider: str
    """The provider's registry name."""
    model: str
    """The model's canonical name."""
    durations: tuple[int, ...]
    """Accepted durations in seconds, shortest first; the first is what the provider uses when none is given."""
    resolutions: tuple[str, ...]
    """Accepted resolutions, lowest first."""
    default_resolution: str = "768p"
    """What the provider uses when a request gives no resolution."""
    short_only: tuple[str, ...] = ("1080p",)
    """Resolutions offered only at the shortest duration."""
    modes: tuple[Mode, ...] = ALL_MODES
    """The generation modes the model takes."""
    mode_limits: dict[str, tuple[Mode, ...]] = {}
    """Resolutions offered in fewer modes than :attr:`modes`, with the modes they take."""
    source: str = ""
    """Where the rules were read (a citation of docs/providers.md)."""

    def effective(self, request: GenerationRequest) -> tuple[int, str]:
        """``(duration, resolution)`` the provider will make for ``request``: its own, else the defaults."""
        duration = request.duration if request.duration is not None else self.durations[0]
        return duration, request.resolution or self.default_resolution

    def resolutions_for(self, mode: Mode) -> tuple[str, ...]:
        """The resolutions ``mode`` may use."""
        return tuple(r for r in self.resolutions if mode in self.mode_limits.get(r, self.modes))

    def check(self, request: GenerationRequest) -> None:
        """Raise :class:`InvalidRequestError` (parameter, value, what is allowed) unless ``request`` fits."""
        mode, model, provider = request.mode, self.model, self.provider
        if mode not in self.modes:
            takes = f"{model} takes {_either(self.modes)}"
            if mode == "text-to-video":
                raise InvalidRequestError(
                    "first_frame", None, f"{model} is image-to-video only: a first_frame is required", provider=provider
                )
            raise InvalidRequestError(
                "last_frame",
                request.last_frame,
                f"{model} does not take a last frame (first-last-frame is {_first_last_models(provider)} only); "
                + takes,
                provider=provider,
            )
        duration, resolution = request.duration, request.resolution
        if duration is not None and duration not in self.durations:
            raise InvalidRequestError(
                "duration", duration, f"{_either(self.durations)} seconds with {model}", provider=provider
            )
        if resolution is not None and resolution not in self.resolutions:
            raise InvalidRequestError(
                "resolution", resolution, f"{model} takes {_either(self.resolutions)}", provider=provider
            )
        short = self.durations[0]
        if resolution in self.short_only and duration not in (None, short):
            longer = tuple(r for r in self.resolutions if r not in self.short_only)
            raise InvalidRequestError(
                "duration",
                duration,
                f"{resolution} is only available at {short} seconds; use {_either(longer)} for {duration} seconds",
                provider=provider,
            )
        if resolution is not None and mode not in self.mode_limits.get(resolution, self.modes):
            raise InvalidRequestError(
                "resolution",
                resolution,
                f"{resolution} is only available for {_either(self.mode_limits[resolution])} on {provider} with "
                f"{model} ({mode} takes {_either(self.resolutions_for(mode))})",
                provider=provider,
            )


def _first_last_models(provider: str) -> str:
    return _either(tuple(r.model for r in RULES[provider].values() if "first-last-frame" in r.modes))


_IMAGE_FIRST: tuple[Mode, ...] = ("text-to-video", "image-to-video")
_NEWER_SOURCE = 'docs/providers.md, "Newer models per provider"'


def _hailuo_02(
    provider: str, durations: tuple[int, ...], source: str, limits: dict[str, tuple[Mode, ...]] | None = None
) -> ModelRules:
    """Hailuo-02 on ``provider``: 512p, 768p, 1080p, every mode; ``limits``: resolutions offered in fewer modes."""
    resolutions = ("512p", "768p", "1080p")
    return ModelRules(
        provider=provider,
        model="MiniMax-Hailuo-02",
        durations=durations,
        resolutions=resolutions,
        mode_limits=limits or {},
        source=source,
    )


def _hailuo_23(provider: str, model: str, modes: tuple[Mode, ...], note: str = "") -> ModelRules:
    """A 2.3 model on ``provider``: 6 or 10 s, 768p or 1080p (1080p at 6 s), no last frame. ``note`` says where
    the provider's own page is missing."""
    return ModelRules(
        provider=provider,
        model=model,
        durations=(6, 10),
        resolutions=("768p", "1080p"),
        modes=modes,
        source=_NEWER_SOURCE + note,
    )


def _newer(provider: str, fast_note: str = "") -> tuple[ModelRules, ModelRules]:
    """Both 2.3 models on ``provider``; 2.3-Fast is image-to-video only."""
    return (
        _hailuo_23(provider, "MiniMax-Hailuo-2.3", _IMAGE_FIRST),
        _hailuo_23(provider, "MiniMax-Hailuo-2.3-Fast", ("image-to-video",), fast_note),
    )


def _table(*rules: ModelRules) -> dict[str, dict[str, ModelRules]]:
    table: dict[str, dict[str, ModelRules]] = {}
    for rule in rules:
        table.setdefault(rule.provider, {})[rule.model] = rule
    return table


RULES: dict[str, dict[str, ModelRules]] = _table(
    # apimart: Hailuo-02 at 5 | 10 s (its own page), 2.3 at 6 | 10 s (its 2.3 page). No apimart page for 2.3-Fast
    # was found: the official API's rules stand in.
    _hailuo_02("apimart", (5, 10), "docs/providers.md, A.2"),
    *_newer("apimart", fast_note=" (the official API's rules)"),
    # toapis: its Hailuo-02 page (no 512P first-last-frame) and its 2.3 page, which covers both 2.3 models.
    _hailuo_02("toapis", (6, 10), "docs/providers.md, B.2", {"512p": _IMAGE_FIRST}),
    *_newer("toapis"),
    # MiniMax: 512P is image-to-video only for Hailuo-02; the 2.3 models have no 512P and no last frame.
    _hailuo_02("minimax", (6, 10), "docs/providers.md, C.2", {"512p": ("image-to-video",)}),
    *_newer("minimax"),
)
"""Every provider's rules by provider name, then by canonical model name (every provider serves every model of
:data:`~hailuo_async._models.MODELS`)."""


def rules_for(provider: str, model: str = DEFAULT_MODEL) -> ModelRules:
    """The rules of ``model`` (canonical name) on ``provider`` (registry name); ``KeyError`` for an unknown pair."""
    return RULES[provider][model]
