"""How commands print: rich text for people, one JSON document for scripts (``--json``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

_state = {"json": False}
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def use_json(enabled: bool) -> None:
    _state["json"] = enabled


def json_mode() -> bool:
    return _state["json"]


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


JSON_OPTION_HELP = "Print one JSON document instead of text (env: BASTION_JSON)."


def emit_rows(rows: list[dict[str, Any]], headers: tuple[str, ...], json: bool) -> None:
    """A list of records: one JSON document with ``--json``, otherwise a table under ``headers`` (one per
    key, in order)."""
    if json:
        emit_json(rows)
        return
    from rich.table import Table  # noqa: PLC0415

    table = Table(*headers, box=None)
    for row in rows:
        table.add_row(*("" if value is None else str(value) for value in row.values()))
    out.print(table)


@contextmanager
def transfer_progress(label: str, source: Path) -> Iterator[Callable[[int], None]]:
    """A transfer bar on stderr (hidden for empty files); yields the callback that advances it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn  # noqa: PLC0415

    total = source.stat().st_size
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=total == 0) as bar:
        task = bar.add_task(label, total=total)
        yield lambda count: bar.advance(task, count)
