"""The allowlist of globals a pickle may import, loaded from reviewed, versioned data (``allowlist.json``)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import NamedTuple

_CLASS_NAME = re.compile(r"^_?[A-Z][A-Za-z0-9_]*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class Allowlist(NamedTuple):
    version: str
    exact: frozenset[tuple[str, str]]
    class_prefixes: tuple[str, ...]

    def allows(self, module: str, name: str) -> bool:
        """Exact (module, name) pairs; under a class prefix, only a plain CamelCase class name. A dotted name
        (``os.system`` reached through attributes) never matches anything but an exact entry."""
        if (module, name) in self.exact:
            return True
        return (
            bool(_MODULE.fullmatch(module))
            and module.startswith(self.class_prefixes)
            and bool(_CLASS_NAME.fullmatch(name))
        )


@cache
def default_allowlist() -> Allowlist:
    document = json.loads(Path(__file__).with_name("allowlist.json").read_text("utf-8"))
    exact = frozenset((module, name) for module, names in document["globals"].items() for name in names)
    return Allowlist(document["version"], exact, tuple(document["class_prefixes"]))
