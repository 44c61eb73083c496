"""Judging pickle streams without unpickling them: walk the opcodes (``pickletools``) with a model of the
stack and memo, resolve every import — GLOBAL, INST, STACK_GLOBAL (its operands through the stack and memo) —
and hold it against the allowlist. Anything not on the allowlist is unsafe; so is anything the walk cannot
resolve or parse (a loader may run a payload before it reaches the error).

joblib files interleave raw array bytes with the pickle: after the BUILD of a ``NumpyArrayWrapper`` the walk
reads the wrapper's shape and dtype from the stack model and skips exactly the bytes joblib's loader would
read (or scans the nested pickle an object array is stored as).
"""

from __future__ import annotations

import io
import math
import pickletools
import re
from typing import Any, NamedTuple

from bastion.scanning.allowlist import Allowlist
from bastion.scanning.report import Finding, ScanReport, Severity

_MARK = object()
_STRING_OPS = frozenset(
    {
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
    }
)
_CONSTANT_OPS = frozenset(
    {
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "FLOAT",
        "BINFLOAT",
        "NEWTRUE",
        "NEWFALSE",
        "NONE",
    }
)
_CALLS = frozenset({"REDUCE", "NEWOBJ", "NEWOBJ_EX"})
_TUPLE_SIZES = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_JOBLIB_WRAPPERS = frozenset(
    {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
    }
)
MAX_NESTED_PICKLES = 10_000


class Global(NamedTuple):
    module: str
    name: str

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"


class Call:
    """The result of calling a global with arguments (kept for the few calls the walk must understand)."""

    __slots__ = ("args", "callee", "state")

    def __init__(self, callee: Global, args: Any) -> None:
        self.callee, self.args, self.state = callee, args, None


class _Dict:
    __slots__ = ("items",)

    def __init__(self, items: dict[Any, Any] | None = None) -> None:
        self.items = items if items is not None else {}


class PickleWalker:
    """One pass over the pickles in ``data`` from ``start``. ``allow_persistent_ids``: PyTorch's loaders
    resolve persistent ids to storages; elsewhere a persistent id is unexpected."""

    def __init__(
        self,
        report: ScanReport,
        location: str,
        allowlist: Allowlist,
        *,
        allow_persistent_ids: bool = False,
    ) -> None:
        self._report, self._location = report, location
        self._allowlist = allowlist
        self._persistent_ok = allow_persistent_ids
        self.globals_seen: set[str] = set()

    def finding(
        self, code: str, message: str, offset: int, name: str | None = None, *, critical: bool = False
    ) -> None:
        self._report.add(
            Finding(
                code=code,
                severity=Severity.CRITICAL if critical else Severity.HIGH,
                message=message,
                location=f"{self._location}@{offset}",
                global_name=name,
            )
        )

    def walk_all(self, stream: Any, end: int, *, max_pickles: int | None = None) -> int:
        """The pickles from the stream's position to ``end``, one after the other: a stream may hold more
        than one and each is loaded by someone. Bytes that do not parse as a pickle are unsafe — unless the
        format says how many pickles there are (``max_pickles``) and what follows them."""
        count = 0
        while stream.tell() < end and count < (max_pickles or MAX_NESTED_PICKLES):
            if not self.walk_one(stream):
                break
            count += 1
        return count

    def walk_one(self, stream: Any) -> bool:
        """One pickle from the stream's position to its STOP. False if it did not parse to a STOP."""
        stack: list[Any] = []
        memo: dict[int, Any] = {}
        offset = stream.tell()
        try:
            for opcode, arg, position in pickletools.genops(stream):
                offset = position if position is not None else offset
                if opcode.name == "STOP":
                    return True
                self._step(opcode, arg, offset, stack, memo, stream)
        except (ValueError, IndexError, KeyError, TypeError, EOFError, OverflowError, MemoryError) as error:
            self.finding(
                "pickle.malformed",
                f"the pickle stream does not parse ({type(error).__name__}); a loader runs what came before",
                offset,
            )
            return False
        self.finding("pickle.truncated", "the pickle stream ends without STOP", offset)
        return False

    def _step(
        self,
        opcode: pickletools.OpcodeInfo,
        arg: Any,
        offset: int,
        stack: list[Any],
        memo: dict[int, Any],
        stream: Any,
    ) -> None:
        name = opcode.name
        if name in _STRING_OPS:
            stack.append(arg if isinstance(arg, str) else bytes(arg).decode("latin-1"))
        elif name in _CONSTANT_OPS:
            stack.append(arg)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo[len(memo) if name == "MEMOIZE" else int(arg)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[int(arg)])
        elif name in ("GLOBAL", "INST", "STACK_GLOBAL"):
            self._import(name, arg, offset, stack)
        elif name in _CALLS or name == "OBJ":
            self._call(name, offset, stack)
        elif name == "BUILD":
            self._build(offset, stack, stream)
        elif name in ("SETITEM", "SETITEMS", "DICT", "EMPTY_DICT"):
            _dict_op(name, stack)
        elif name in _TUPLE_SIZES or name == "TUPLE":
            _tuple_op(name, stack)
        else:
            if name in ("EXT1", "EXT2", "EXT4"):
                self.finding(
                    "pickle.extension",
                    "an extension-registry import (EXT*) names a global the scanner cannot see",
                    offset,
                    critical=True,
                )
            elif name in ("PERSID", "BINPERSID") and not self._persistent_ok:
                self.finding("pickle.persistent-id", "a persistent id outside a PyTorch checkpoint", offset)
            _generic(opcode, stack)

    def _import(self, name: str, arg: Any, offset: int, stack: list[Any]) -> None:
        if name == "STACK_GLOBAL":
            attribute, module = stack.pop(), stack.pop()
            if not isinstance(module, str) or not isinstance(attribute, str):
                self.finding(
                    "pickle.global.unresolved",
                    "STACK_GLOBAL names a module or attribute that is not a constant string",
                    offset,
                )
                stack.append(None)
                return
        else:
            module, _, attribute = str(arg).partition(" ")
        imported = Global(module, attribute)
        self._judge(imported, offset)
        if name == "INST":
            _pop_to_mark(stack)
            stack.append(Call(imported, None))
        else:
            stack.append(imported)

    def _build(self, offset: int, stack: list[Any], stream: Any) -> None:
        state = stack.pop()
        target = stack[-1]
        if isinstance(target, Call):
            target.state = state
            if (target.callee.module, target.callee.name) in _JOBLIB_WRAPPERS:
                self._skip_joblib_array(target, offset, stream)

    def _judge(self, imported: Global, offset: int) -> None:
        self.globals_seen.add(imported.dotted)
        if not self._allowlist.allows(imported.module, imported.name):
            self.finding(
                "pickle.global.not-allowed",
                f"imports {imported.dotted}, which is not on the allowlist",
                offset,
                imported.dotted,
                critical=True,
            )

    def _call(self, name: str, offset: int, stack: list[Any]) -> None:
        if name == "OBJ":
            items = _pop_to_mark(stack)
            callee, args = (items[0], tuple(items[1:])) if items else (None, ())
        elif name == "NEWOBJ_EX":
            _kwargs, args, callee = stack.pop(), stack.pop(), stack.pop()
        else:
            args, callee = stack.pop(), stack.pop()
        if not isinstance(callee, Global):
            # Every call a pickler emits is of a global; anything else was computed inside the stream.
            self.finding("pickle.call.computed", "calls something that is not a named global", offset)
            stack.append(None)
            return
        stack.append(Call(callee, args))

    def _skip_joblib_array(self, wrapper: Call, offset: int, stream: Any) -> None:
        """Advance past the array bytes joblib writes after the wrapper, exactly as its loader reads them."""
        state: dict[Any, Any] = wrapper.state.items if isinstance(wrapper.state, _Dict) else {}
        try:
            shape, dtype = state["shape"], state["dtype"]
            count = math.prod(int(x) for x in shape) if shape else 1
            itemsize, has_object = _dtype_size(dtype)
        except (KeyError, TypeError, ValueError):
            self.finding(
                "joblib.wrapper.unreadable",
                "a joblib array wrapper whose shape or dtype the scan cannot read",
                offset,
            )
            raise ValueError("unreadable joblib wrapper") from None
        if has_object:
            # Object arrays are a nested pickle (protocol 2) right here; scan it like any other.
            if not self.walk_one(stream):
                raise ValueError("nested joblib pickle")
            return
        if "numpy_array_alignment_bytes" in state and state["numpy_array_alignment_bytes"] is not None:
            padding = stream.read(1)
            if len(padding) != 1:
                raise EOFError
            stream.seek(padding[0], io.SEEK_CUR)
        size = count * itemsize
        stream.seek(size - 1, io.SEEK_CUR)
        if len(stream.read(1)) != 1 and size > 0:
            raise EOFError


_DTYPE = re.compile(r"^[<>|=]?([biufcmMOSUV])(\d*)(\[\w+\])?$")


def _dtype_size(dtype: Any) -> tuple[int, bool]:
    """(itemsize, has objects) of a ``numpy.dtype(code, ...)`` call seen in the stream, from the plain type
    code alone ('f8', '<i4', 'U5', 'O8', ...); structured or unusual dtypes are not guessed at."""
    if (
        not isinstance(dtype, Call)
        or dtype.callee.dotted != "numpy.dtype"
        or type(dtype.args) is not tuple
        or not dtype.args
        or not isinstance(dtype.args[0], str)
    ):
        raise ValueError("not a dtype")
    match = _DTYPE.fullmatch(dtype.args[0])
    if match is None:
        raise ValueError("not a plain dtype")
    kind, digits = match.group(1), match.group(2)
    if kind == "O":
        return 0, True
    state = dtype.state
    if isinstance(state, tuple) and len(state) >= 6 and isinstance(state[5], int) and state[5] > 0:
        return state[5], False  # flexible types (S, U, V) carry their size in the state
    if not digits or int(digits) == 0:
        raise ValueError("a dtype without a size")
    return int(digits) * (4 if kind == "U" else 1), False


def _dict_op(name: str, stack: list[Any]) -> None:
    if name == "EMPTY_DICT":
        stack.append(_Dict())
        return
    if name == "DICT":
        items = _pop_to_mark(stack)
        stack.append(_Dict(dict(zip(items[::2], items[1::2], strict=False))))
        return
    if name == "SETITEM":
        value, key = stack.pop(), stack.pop()
        items = [key, value]
    else:
        items = _pop_to_mark(stack)
    target = stack[-1]
    if isinstance(target, _Dict):
        for key, value in zip(items[::2], items[1::2], strict=False):
            if isinstance(key, str | int | float | bool | tuple):
                target.items[key] = value


def _tuple_op(name: str, stack: list[Any]) -> None:
    if name == "TUPLE":
        stack.append(tuple(_pop_to_mark(stack)))
        return
    size = _TUPLE_SIZES[name]
    if len(stack) < size:
        raise IndexError("stack underflow")
    items = stack[len(stack) - size :]
    del stack[len(stack) - size :]
    stack.append(tuple(items))


def _pop_to_mark(stack: list[Any]) -> list[Any]:
    items: list[Any] = []
    while stack:
        item = stack.pop()
        if item is _MARK:
            items.reverse()
            return items
        items.append(item)
    raise IndexError("no MARK on the stack")


def _generic(opcode: pickletools.OpcodeInfo, stack: list[Any]) -> None:
    """Stack effect of every other opcode, from pickletools' own description of it."""
    before, after = opcode.stack_before, opcode.stack_after
    if pickletools.markobject in before or (opcode.name == "POP" and stack and stack[-1] is _MARK):
        _pop_to_mark(stack)
        count = before.index(pickletools.markobject) if pickletools.markobject in before else 0
    else:
        count = len(before)
    if count:
        if len(stack) < count:
            raise IndexError("stack underflow")
        del stack[len(stack) - count :]
    for item in after:
        stack.append(_MARK if item is pickletools.markobject else None)
