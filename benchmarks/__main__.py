"""``make bench``: run every benchmark module that exists (``python -m benchmarks``)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path


def main() -> None:
    here = Path(__file__).parent
    for module in sorted(
        info.name for info in pkgutil.iter_modules([str(here)]) if info.name.startswith("bench_")
    ):
        print(f"== {module}")
        importlib.import_module(f"benchmarks.{module}").main()


if __name__ == "__main__":
    main()
