"""``python -m hailuo_async``: the ``hailuo`` command (see :mod:`hailuo_async.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
