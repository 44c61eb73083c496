"""Scanning a model artifact without loading it: the format is told from the bytes (never the file name),
and each format is judged by its own rules. Unknown formats cannot be judged, so they are not accepted.

- ``PK\\x03\\x04``: zip (PyTorch, Keras v3, ``.npz``, other): strict zip reading, then each member;
- ``\\x80`` + protocol, or a protocol-0 opcode: pickle, joblib, legacy PyTorch: the opcode walk;
- ``\\x93NUMPY``: ``.npy``: the header is parsed as a literal; object arrays are pickles;
- u64 length + ``{``: safetensors: header bounds, dtypes, shapes, offsets that tile the data;
- ``\\x89HDF``: Keras HDF5: the model config (no Lambda layers, no custom objects);
- ``GGUF``: header sanity;
- a protobuf starting with varint field 1: ONNX (operator domains, external data paths, subgraphs) or a
  TensorFlow SavedModel (file, Python and memory-mapping ops), told apart by their structure.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path
from typing import Any

from bastion.scanning import graphs
from bastion.scanning.allowlist import Allowlist, default_allowlist
from bastion.scanning.archives import ENCRYPTED, ZipProblem, contents, read_members
from bastion.scanning.pickles import PickleWalker
from bastion.scanning.report import Finding, ScanReport, Severity
from bastion.scanning.streams import Window

MAX_DEPTH = 3
MAX_MEMBER_BYTES = 4 * 1024**3
_TORCH_LEGACY_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa85019")
_PROTOCOL0_FIRST = frozenset(b"(cdlI]}NSVFLtKJM")  # opcodes a protocol 0/1 pickle can begin with
_SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8, "C64": 8,
}  # fmt: skip


def scan_path(path: Path, allowlist: Allowlist | None = None) -> ScanReport:
    report = ScanReport(path=str(path))
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            if size == 0:
                report.format = "empty"
                report.unscannable = True
                return report
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                report.scanned_bytes = size
                _scan(Window(mapped), report, path.name, allowlist or default_allowlist(), depth=0)
    except OSError as error:
        report.add(Finding("scan.unreadable", Severity.MEDIUM, f"cannot read: {error.strerror}", str(path)))
    return report


def _scan(data: Window, report: ScanReport, location: str, allowlist: Allowlist, depth: int) -> None:
    head = data.head(16)
    kind = sniff(head, len(data))
    if depth == 0:
        report.format = kind
    if kind == "zip":
        _scan_zip(data, report, location, allowlist, depth)
    elif kind == "torch-legacy":
        walker = PickleWalker(report, location, allowlist, allow_persistent_ids=True)
        if walker.walk_all(data.stream(), len(data), max_pickles=5) < 5:
            report.add(
                Finding("torch.legacy.short", Severity.HIGH, "fewer pickles than the format has", location)
            )
    elif kind == "pickle":
        PickleWalker(report, location, allowlist).walk_all(data.stream(), len(data))
    elif kind == "npy":
        _scan_npy(data, report, location, allowlist)
    elif kind in _HEADER_FORMATS:
        _HEADER_FORMATS[kind](data, report, location)
    elif kind == "protobuf":
        _scan_protobuf(data, report, location, depth)
    elif kind in ("gzip", "bz2", "xz", "zlib"):
        _scan_compressed(kind, data, report, location, allowlist, depth)
    elif kind == "text" and depth > 0:
        pass  # text inside an archive (a README, a JSON config) is data, not code
    else:
        report.add(
            Finding("format.unknown", Severity.MEDIUM, f"unknown or unsupported format ({kind})", location)
        )


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (_TORCH_LEGACY_MAGIC, "torch-legacy"),
    (b"\x93NUMPY", "npy"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"GGUF", "gguf"),
    (b"7z\xbc\xaf\x27\x1c", "compressed"),
    (b"Rar!", "compressed"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ", "xz"),
    (b"\x78\x01", "zlib"),
    (b"\x78\x5e", "zlib"),
    (b"\x78\x9c", "zlib"),
    (b"\x78\xda", "zlib"),
)


def sniff(head: bytes, size: int) -> str:
    kind = next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)
    if kind is None and head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        kind = "pickle"
    if kind is None and len(head) >= 9:
        (length,) = struct.unpack_from("<Q", head)
        if 2 <= length <= size - 8 and head[8:9] == b"{":
            kind = "safetensors"
    if kind is None and head[:1] and head[0] in _PROTOCOL0_FIRST:
        kind = "pickle"
    if kind is None and head[:1] == b"\x08":  # protobuf field 1, varint: ONNX and SavedModel both start so
        kind = "protobuf"
    if kind is None:
        kind = "text" if _looks_textual(head) else "unknown"
    return kind


def _scan_protobuf(data: Window, report: ScanReport, location: str, depth: int) -> None:
    view = data.view()
    kind = graphs.kind_of(view)
    if depth == 0:
        report.format = kind or "unknown"
    if kind == "onnx":
        graphs.scan_onnx(view, report, location)
    elif kind == "savedmodel":
        graphs.scan_savedmodel(view, report, location)
    else:
        report.add(Finding("format.unknown", Severity.MEDIUM, "an unknown protobuf message", location))


def _looks_textual(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def _scan_zip(data: Window, report: ScanReport, location: str, allowlist: Allowlist, depth: int) -> None:
    try:
        members = read_members(data, report, location)
        names = [m.name for m in members]
        torch = any(n == "data.pkl" or n.endswith("/data.pkl") for n in names)
        if depth == 0 and torch:
            report.format = "pytorch"
        if any(n == "code/" or "/code/" in n or n.startswith("code/") for n in names) and torch:
            report.add(
                Finding("torch.torchscript", Severity.MEDIUM, "TorchScript code is not scanned", location)
            )
        for member in members:
            if member.flags & ENCRYPTED or member.name.endswith("/"):
                continue
            where = f"{location}!{member.name}"
            base = member.name.rsplit("/", 1)[-1]
            if torch and "/data/" in f"/{member.name}" and not base.endswith(".pkl"):
                continue  # raw tensor storage: bytes torch copies, never interprets (and not read here)
            body = contents(data, member, MAX_MEMBER_BYTES)
            if torch and (base.endswith(".pkl") or base == "data.pkl"):
                walker = PickleWalker(report, where, allowlist, allow_persistent_ids=True)
                walker.walk_all(body.stream(), len(body))
            elif base == "config.json" and depth <= MAX_DEPTH:
                _scan_keras_config(body.bytes(), report, where)
            elif depth + 1 > MAX_DEPTH:
                report.add(Finding("archive.nesting", Severity.HIGH, "archives nested too deep", where))
            else:
                _scan(body, report, where, allowlist, depth + 1)
    except ZipProblem as problem:
        report.add(Finding("archive.malformed", Severity.HIGH, str(problem), location))


def _scan_compressed(
    kind: str, data: Window, report: ScanReport, location: str, allowlist: Allowlist, depth: int
) -> None:
    """joblib's compressed files (and any single compressed stream): inflate within the scan limit, then scan
    what comes out like any file."""
    import bz2  # noqa: PLC0415 - only compressed files need these
    import lzma  # noqa: PLC0415
    import zlib  # noqa: PLC0415

    if depth + 1 > MAX_DEPTH:
        report.add(Finding("archive.nesting", Severity.HIGH, "compressed too many times over", location))
        return
    decompressor: Any = {
        "gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
        "zlib": zlib.decompressobj,
        "bz2": bz2.BZ2Decompressor,
        "xz": lzma.LZMADecompressor,
    }[kind]()
    try:
        inflated = decompressor.decompress(data.view(), MAX_MEMBER_BYTES + 1)
    except (OSError, ValueError, EOFError, zlib.error, lzma.LZMAError):
        report.add(
            Finding("compressed.malformed", Severity.HIGH, f"the {kind} stream does not inflate", location)
        )
        return
    if len(inflated) > MAX_MEMBER_BYTES:
        report.add(Finding("archive.bomb", Severity.HIGH, "inflates beyond the scan limit", location))
        return
    _scan(Window(inflated), report, f"{location}!{kind}", allowlist, depth + 1)


def _scan_npy(data: Window, report: ScanReport, location: str, allowlist: Allowlist) -> None:
    import ast  # noqa: PLC0415 - only .npy headers need it

    head = data.head(12)
    major = head[6]
    if major == 1:
        (length,), start = struct.unpack_from("<H", head, 8), 10
    else:
        (length,), start = struct.unpack_from("<I", head, 8), 12
    try:
        header = ast.literal_eval(data.slice(start, start + length).bytes().decode("latin-1"))
        descr = header["descr"]
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
        report.add(Finding("npy.header", Severity.HIGH, "the .npy header is not a plain literal", location))
        return
    if "O" in str(descr):
        # numpy.load(allow_pickle=True) unpickles what follows the header.
        body = data.slice(start + length, len(data))
        PickleWalker(report, location, allowlist).walk_all(body.stream(), len(body))


def _scan_safetensors(data: Window, report: ScanReport, location: str) -> None:
    (length,) = struct.unpack_from("<Q", data.head(8))
    try:
        header = json.loads(data.slice(8, 8 + length).bytes())
        if not isinstance(header, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError, RecursionError):
        report.add(Finding("safetensors.header", Severity.HIGH, "the header is not a JSON object", location))
        return
    body = len(data) - 8 - length
    spans: list[tuple[int, int]] = []
    for name, tensor in header.items():
        if name == "__metadata__":
            if not isinstance(tensor, dict) or not all(isinstance(v, str) for v in tensor.values()):
                report.add(
                    Finding(
                        "safetensors.metadata",
                        Severity.HIGH,
                        "metadata must map strings to strings",
                        location,
                    )
                )
            continue
        problem = _tensor_problem(tensor, body)
        if problem:
            report.add(Finding("safetensors.tensor", Severity.HIGH, f"{name}: {problem}", location))
            continue
        spans.append(tuple(tensor["data_offsets"]))
    cursor = 0
    for start, end in sorted(spans):
        if start != cursor:
            report.add(
                Finding("safetensors.offsets", Severity.HIGH, "tensor data overlaps or leaves gaps", location)
            )
            return
        cursor = end
    if cursor != body:
        report.add(Finding("safetensors.offsets", Severity.HIGH, "bytes after the last tensor", location))


def _tensor_problem(tensor: Any, body: int) -> str | None:
    if not isinstance(tensor, dict) or set(tensor) != {"dtype", "shape", "data_offsets"}:
        return "not a tensor description"
    dtype, shape, offsets = tensor["dtype"], tensor["shape"], tensor["data_offsets"]
    if dtype not in _SAFETENSORS_DTYPES:
        return f"unknown dtype {dtype!r}"
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        return "bad shape"
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= body
    ):
        return "offsets outside the data"
    count = 1
    for dim in shape:
        count *= dim
    if count * _SAFETENSORS_DTYPES[dtype] != offsets[1] - offsets[0]:
        return "size does not match dtype and shape"
    return None


_KERAS_UNSAFE = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})
_KERAS_BUILTIN_MODULES = ("keras", "tensorflow.keras", "keras.src", "tf_keras")


def _scan_keras_config(raw: bytes, report: ScanReport, location: str) -> None:
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        report.add(Finding("keras.config", Severity.HIGH, "the model config is not JSON", location))
        return
    _walk_keras(config, report, location, 0)


def _walk_keras(node: Any, report: ScanReport, location: str, depth: int) -> None:
    """Every layer at any depth: Lambda layers carry code; a class from outside Keras is a custom object."""
    if depth > 200:
        report.add(Finding("keras.depth", Severity.HIGH, "the model config nests too deep", location))
        return
    if isinstance(node, dict):
        class_name = node.get("class_name")
        if class_name in _KERAS_UNSAFE:
            report.add(
                Finding(
                    "keras.lambda",
                    Severity.CRITICAL,
                    f"a {class_name} layer runs code on load",
                    location,
                    str(class_name),
                )
            )
        module = node.get("module")
        if (
            isinstance(class_name, str)
            and isinstance(module, str)
            and not module.startswith(_KERAS_BUILTIN_MODULES)
        ):
            report.add(
                Finding(
                    "keras.custom-object",
                    Severity.HIGH,
                    f"custom object {module}.{class_name}",
                    location,
                    f"{module}.{class_name}",
                )
            )
        if isinstance(node.get("registered_name"), str) and ">" in node["registered_name"]:
            report.add(
                Finding(
                    "keras.custom-object",
                    Severity.HIGH,
                    f"registered custom object {node['registered_name']}",
                    location,
                )
            )
        for value in node.values():
            _walk_keras(value, report, location, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _walk_keras(value, report, location, depth + 1)


def _scan_hdf5(data: Window, report: ScanReport, location: str) -> None:
    """Keras HDF5 keeps its model config as a JSON attribute of the root group; h5py reads attributes
    without running anything."""
    try:
        import h5py  # noqa: PLC0415 - only HDF5 files need it
    except ImportError:
        report.add(Finding("hdf5.unsupported", Severity.MEDIUM, "HDF5 scanning needs h5py", location))
        return
    import io  # noqa: PLC0415

    try:
        with h5py.File(io.BytesIO(data.bytes()), "r") as handle:
            raw = handle.attrs.get("model_config")
    except (OSError, ValueError) as error:
        report.add(
            Finding("hdf5.malformed", Severity.HIGH, f"unreadable HDF5 ({type(error).__name__})", location)
        )
        return
    if raw is None:
        return  # weights only
    _scan_keras_config(raw if isinstance(raw, bytes) else str(raw).encode(), report, location)


def _scan_gguf(data: Window, report: ScanReport, location: str) -> None:
    head = data.head(24)
    if len(head) < 24:
        report.add(Finding("gguf.header", Severity.HIGH, "truncated GGUF header", location))
        return
    version, tensors, keys = struct.unpack_from("<IQQ", head, 4)
    if version not in (1, 2, 3) or tensors > 1_000_000 or keys > 1_000_000:
        report.add(Finding("gguf.header", Severity.HIGH, "implausible GGUF header", location))


# Formats judged by their headers alone, with no nested content to recurse into.
_HEADER_FORMATS = {"safetensors": _scan_safetensors, "hdf5": _scan_hdf5, "gguf": _scan_gguf}
