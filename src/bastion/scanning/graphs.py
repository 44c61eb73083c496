"""Graph model formats, judged from their protobuf structure without loading them.

- ONNX (``ModelProto``): every operator's domain must be a standard one (a custom domain means a custom-op
  library: native code); external tensor data must stay inside the model's directory (no absolute paths, no
  ``..``); subgraphs (If/Loop/Scan bodies) and model-local functions are walked too.
- TensorFlow SavedModel (``saved_model.pb``): every node of every graph and function is checked against the
  ops that read or write files, run Python, or map files into memory.
"""

from __future__ import annotations

import re

from bastion.scanning.protowire import LEN, VARINT, WireError, fields, text
from bastion.scanning.report import Finding, ScanReport, Severity

# Operator domains ONNX Runtime implements itself; anything else needs a custom-op library (native code).
ONNX_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "com.microsoft"})
# TensorFlow ops that touch the file system, run Python, or map files: a model has no business with them.
TF_UNSAFE_OPS = frozenset(
    {
        "ReadFile", "WriteFile", "MatchingFiles", "MatchingFilesDataset", "DeleteFile", "ImmutableConst",
        "PyFunc", "PyFuncStateless", "EagerPyFunc", "DebugIdentityV2", "DebugIdentityV3",
        "RecursivelyCreateDir", "FileExists", "IsDirectory", "GetMatchingFiles", "Exit", "DumpBinaryIterator",
        "WriteTextLineDataset", "TFRecordDataset", "FixedLengthRecordDataset", "TextLineDataset",
    }
)  # fmt: skip
MAX_DEPTH = 32
_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:[\\/]")

# ONNX field numbers (onnx.proto3)
_MODEL_GRAPH, _MODEL_OPSET, _MODEL_TRAINING, _MODEL_FUNCTIONS = 7, 8, 20, 25
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_NODE_OP, _NODE_ATTRIBUTE, _NODE_DOMAIN = 4, 5, 7
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS = 5, 6, 10, 11
_TENSOR_EXTERNAL, _FUNCTION_NODE, _FUNCTION_OPSET = 13, 7, 9
# SavedModel field numbers (saved_model.proto, meta_graph.proto, graph.proto, function.proto)
_SAVED_META_GRAPHS, _META_GRAPH_DEF, _GRAPH_DEF_NODE, _GRAPH_DEF_LIBRARY = 2, 2, 1, 2
_LIBRARY_FUNCTION, _FUNCTION_NODE_DEF, _NODE_DEF_OP = 1, 3, 2


def kind_of(buf: memoryview) -> str | None:
    """ "onnx", "savedmodel" or None, from the top-level structure (both start with a varint field 1)."""
    try:
        top = [(number, kind) for number, kind, _, _ in fields(buf)]
    except WireError:
        return None
    numbers = {number for number, _ in top}
    if (1, VARINT) not in top:
        return None
    if (_MODEL_GRAPH, LEN) in top and numbers <= set(range(1, 30)):
        return "onnx"
    if numbers <= {1, 2} and (_SAVED_META_GRAPHS, LEN) in top:
        return "savedmodel"
    return None


class _Walk:
    def __init__(self, buf: memoryview, report: ScanReport, location: str) -> None:
        self.buf, self.report, self.location = buf, report, location

    def finding(self, code: str, message: str, name: str | None = None) -> None:
        self.report.add(Finding(code, Severity.HIGH, message, self.location, name))

    def sub(self, offset: int, length: int) -> list[tuple[int, int, int, int]]:
        return list(fields(self.buf, offset, offset + length))


def scan_onnx(buf: memoryview, report: ScanReport, location: str) -> None:
    walk = _Walk(buf, report, location)
    try:
        for number, kind, offset, length in fields(buf):
            if kind != LEN:
                continue
            if number == _MODEL_GRAPH:
                _onnx_graph(walk, offset, length, 0)
            elif number == _MODEL_OPSET:
                _onnx_opset(walk, offset, length)
            elif number == _MODEL_TRAINING:  # initialization and algorithm graphs
                for t_number, t_kind, t_offset, t_length in walk.sub(offset, length):
                    if t_kind == LEN and t_number in (1, 2):
                        _onnx_graph(walk, t_offset, t_length, 1)
            elif number == _MODEL_FUNCTIONS:
                for f_number, f_kind, f_offset, f_length in walk.sub(offset, length):
                    if f_kind == LEN and f_number == _FUNCTION_NODE:
                        _onnx_node(walk, f_offset, f_length, 0)
                    elif f_kind == LEN and f_number == _FUNCTION_OPSET:
                        _onnx_opset(walk, f_offset, f_length)
    except (WireError, RecursionError) as error:
        walk.finding("onnx.malformed", f"the model does not parse: {error}")


def _onnx_opset(walk: _Walk, offset: int, length: int) -> None:
    for number, kind, value_offset, value_length in walk.sub(offset, length):
        if number == 1 and kind == LEN:
            domain = text(walk.buf, value_offset, value_length)
            if domain not in ONNX_DOMAINS:
                walk.finding(
                    "onnx.domain.unknown", f"imports operator set {domain!r} (a custom-op library)", domain
                )


def _onnx_graph(walk: _Walk, offset: int, length: int, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise WireError("subgraphs nested too deeply")
    for number, kind, item_offset, item_length in walk.sub(offset, length):
        if kind != LEN:
            continue
        if number == _GRAPH_NODE:
            _onnx_node(walk, item_offset, item_length, depth)
        elif number == _GRAPH_INITIALIZER:
            _onnx_tensor(walk, item_offset, item_length)
        elif number == _GRAPH_SPARSE_INITIALIZER:  # values and indices are tensors
            for s_number, s_kind, s_offset, s_length in walk.sub(item_offset, item_length):
                if s_kind == LEN and s_number in (1, 2):
                    _onnx_tensor(walk, s_offset, s_length)


def _onnx_node(walk: _Walk, offset: int, length: int, depth: int) -> None:
    op, domain = "", ""
    for number, kind, item_offset, item_length in walk.sub(offset, length):
        if kind != LEN:
            continue
        if number == _NODE_OP:
            op = text(walk.buf, item_offset, item_length)
        elif number == _NODE_DOMAIN:
            domain = text(walk.buf, item_offset, item_length)
        elif number == _NODE_ATTRIBUTE:
            for a_number, a_kind, a_offset, a_length in walk.sub(item_offset, item_length):
                if a_kind != LEN:
                    continue
                if a_number in (_ATTR_G, _ATTR_GRAPHS):
                    _onnx_graph(walk, a_offset, a_length, depth + 1)
                elif a_number in (_ATTR_T, _ATTR_TENSORS):
                    _onnx_tensor(walk, a_offset, a_length)
    if domain not in ONNX_DOMAINS:
        walk.finding(
            "onnx.domain.unknown", f"operator {op!r} from unknown domain {domain!r}", f"{domain}::{op}"
        )


def _onnx_tensor(walk: _Walk, offset: int, length: int) -> None:
    for number, kind, item_offset, item_length in walk.sub(offset, length):
        if number != _TENSOR_EXTERNAL or kind != LEN:
            continue
        entry = {
            key: text(walk.buf, o, n) for key, k, o, n in walk.sub(item_offset, item_length) if k == LEN
        }  # key=1, value=2
        if entry.get(1) == "location":
            path = entry.get(2, "")
            parts = path.replace("\\", "/").split("/")
            if not path or path.startswith(("/", "\\")) or _WINDOWS_ABSOLUTE.match(path) or ".." in parts:
                walk.finding(
                    "onnx.external-data.outside", f"external data at {path!r}, outside the model", path
                )
            elif "\x00" in path:
                walk.finding("onnx.external-data.outside", "external data path contains NUL", path)


def scan_savedmodel(buf: memoryview, report: ScanReport, location: str) -> None:
    walk = _Walk(buf, report, location)
    try:
        for number, kind, offset, length in fields(buf):
            if number != _SAVED_META_GRAPHS or kind != LEN:
                continue
            for m_number, m_kind, m_offset, m_length in walk.sub(offset, length):
                if m_number == _META_GRAPH_DEF and m_kind == LEN:
                    _tf_graph(walk, m_offset, m_length)
    except WireError as error:
        walk.finding("savedmodel.malformed", f"the SavedModel does not parse: {error}")


def _tf_graph(walk: _Walk, offset: int, length: int) -> None:
    for number, kind, item_offset, item_length in walk.sub(offset, length):
        if kind != LEN:
            continue
        if number == _GRAPH_DEF_NODE:
            _tf_node(walk, item_offset, item_length)
        elif number == _GRAPH_DEF_LIBRARY:
            for l_number, l_kind, l_offset, l_length in walk.sub(item_offset, item_length):
                if l_number != _LIBRARY_FUNCTION or l_kind != LEN:
                    continue
                for f_number, f_kind, f_offset, f_length in walk.sub(l_offset, l_length):
                    if f_number == _FUNCTION_NODE_DEF and f_kind == LEN:
                        _tf_node(walk, f_offset, f_length)


def _tf_node(walk: _Walk, offset: int, length: int) -> None:
    for number, kind, item_offset, item_length in walk.sub(offset, length):
        if number == _NODE_DEF_OP and kind == LEN:
            op = text(walk.buf, item_offset, item_length)
            if op in TF_UNSAFE_OPS:
                walk.finding(
                    "savedmodel.op.unsafe", f"uses the {op} op (files, Python or memory mapping)", op
                )
