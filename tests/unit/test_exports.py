"""The package root: what it exports, how it is ordered, and that it imports cleanly."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import hailuo_async
from hailuo_async import _exceptions

REPO = Path(__file__).resolve().parents[2]


def isort_style_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: SCREAMING_CASE constants, then CamelCase classes, then everything else."""
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def public_names() -> set[str]:
    """Names a user may import: not private, not a submodule; plus ``__version__``."""
    names = {
        name
        for name, value in vars(hailuo_async).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    return names | {"__version__"}


def test_all_is_sorted() -> None:
    exported = list(hailuo_async.__all__)
    assert exported == sorted(exported, key=isort_style_key)
    assert len(exported) == len(set(exported))
    # Sanity: the rule is not vacuous for this list (all three groups are present).
    assert {isort_style_key(name)[0] for name in exported} == {0, 1, 2}


def test_all_matches_public_names() -> None:
    assert set(hailuo_async.__all__) == public_names()
    for name in hailuo_async.__all__:
        assert hasattr(hailuo_async, name)


def test_exported_classes_report_package_module() -> None:
    classes = [getattr(hailuo_async, name) for name in hailuo_async.__all__]
    classes = [obj for obj in classes if isinstance(obj, type)]
    assert len(classes) >= 30
    wrong = {cls.__qualname__: cls.__module__ for cls in classes if cls.__module__ != "hailuo_async"}
    assert not wrong


def test_exceptions_and_request_import_from_root() -> None:
    from hailuo_async import GenerationRequest, HailuoError, InvalidRequestError

    assert GenerationRequest("A cat").prompt == "A cat"
    assert issubclass(InvalidRequestError, HailuoError)
    for name in _exceptions.__all__:
        assert name in hailuo_async.__all__
        assert getattr(hailuo_async, name) is getattr(_exceptions, name)


def test_models_and_money_import_from_root() -> None:
    from hailuo_async import (
        DEFAULT_MODEL,
        DEFAULT_PRICES,
        MODELS,
        BudgetExceededError,
        Estimate,
        NotSubmittedError,
        PriceTable,
        estimate,
    )

    assert DEFAULT_MODEL in MODELS
    assert isinstance(DEFAULT_PRICES, PriceTable)
    assert isinstance(estimate(["a"], provider="minimax"), Estimate)
    assert not issubclass(BudgetExceededError, NotSubmittedError)  # the cause of one, not a kind of one


def test_version() -> None:
    assert isinstance(hailuo_async.__version__, str)
    assert hailuo_async.__version__[:1].isdigit()


def test_py_typed_marker() -> None:
    marker = Path(hailuo_async.__file__).parent / "py.typed"
    assert marker.is_file()


def test_import_has_no_deprecation_warnings() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", "import hailuo_async, hailuo_async.providers"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_generate_knows_every_client_option() -> None:
    import inspect

    from hailuo_async._oneshot import CLIENT_OPTIONS

    parameters = set(inspect.signature(hailuo_async.HailuoClient.__init__).parameters) - {"self", "provider"}
    assert parameters == CLIENT_OPTIONS
