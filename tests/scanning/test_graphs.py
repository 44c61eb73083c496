"""ONNX models and TensorFlow SavedModels, judged from their protobuf structure without loading them.

The ONNX files are built with the ``onnx`` package itself (real models). TensorFlow is not installed here
(it is hundreds of megabytes for one test), so the SavedModels are encoded by hand below with the field
numbers of TensorFlow's own saved_model.proto, meta_graph.proto, graph.proto and function.proto.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bastion.scanning.scanner import scan_path

np = pytest.importorskip("numpy")


def _graph(
    nodes: list[onnx.NodeProto], initializers: list[onnx.TensorProto] | None = None
) -> onnx.GraphProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    return helper.make_graph(nodes, "g", [x], [y], initializer=initializers or [])


def _save(tmp_path: Path, model: onnx.ModelProto, name: str = "model.onnx") -> Path:
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def _model(graph: onnx.GraphProto, *domains: str) -> onnx.ModelProto:
    opsets = [helper.make_opsetid("", 17), *(helper.make_opsetid(d, 1) for d in domains)]
    return helper.make_model(graph, opset_imports=opsets)


def test_clean_onnx_model(tmp_path: Path) -> None:
    weights = numpy_helper.from_array(np.ones((1, 4), dtype=np.float32), "w")
    graph = _graph(
        [helper.make_node("Add", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], [weights]
    )
    report = scan_path(_save(tmp_path, _model(graph)))
    assert (report.format, report.verdict.value, report.findings) == ("onnx", "clean", [])


def test_custom_operator_domain_is_unsafe(tmp_path: Path) -> None:
    graph = _graph([helper.make_node("Exec", ["x"], ["y"], domain="evil.ops")])
    report = scan_path(_save(tmp_path, _model(graph, "evil.ops")))
    assert report.verdict.value == "unsafe"
    assert {f.global_name for f in report.findings} == {"evil.ops", "evil.ops::Exec"}


def test_custom_operator_inside_a_subgraph(tmp_path: Path) -> None:
    inner = helper.make_graph(
        [helper.make_node("Payload", ["x"], ["z"], domain="com.attacker")],
        "then",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["z"])],
        "else",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
    )
    cond = helper.make_node("If", ["c"], ["y"], then_branch=inner, else_branch=other)
    report = scan_path(_save(tmp_path, _model(_graph([cond]))))
    assert [f.code for f in report.findings] == ["onnx.domain.unknown"]
    assert report.findings[0].global_name == "com.attacker::Payload"


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/shadow", "C:\\Windows\\win.ini", "a/../../b"])
def test_external_data_outside_the_model_directory(tmp_path: Path, location: str) -> None:
    tensor = _external_tensor()
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    graph = _graph([helper.make_node("Add", ["x", "w"], ["y"])], [tensor])
    report = scan_path(_save(tmp_path, _model(graph)))
    assert [f.code for f in report.findings] == ["onnx.external-data.outside"]
    assert report.verdict.value == "unsafe"


def test_external_data_beside_the_model_is_fine(tmp_path: Path) -> None:
    tensor = _external_tensor()
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "weights/w.bin"
    graph = _graph([helper.make_node("Add", ["x", "w"], ["y"])], [tensor])
    assert scan_path(_save(tmp_path, _model(graph))).verdict.value == "clean"


def test_truncated_onnx_is_not_accepted(tmp_path: Path) -> None:
    graph = _graph([helper.make_node("Relu", ["x"], ["y"])])
    data = _model(graph).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) - 7])
    assert scan_path(path).verdict.value != "clean"


def _external_tensor() -> onnx.TensorProto:
    tensor = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1, 4])
    tensor.data_location = TensorProto.EXTERNAL
    return tensor


# -- SavedModel, hand-encoded -----------------------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _len(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _node(name: str, op: str) -> bytes:  # NodeDef: name = 1, op = 2
    return _len(1, name.encode()) + _len(2, op.encode())


def _saved_model(nodes: list[bytes], function_nodes: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    graph = b"".join(_len(1, node) for node in nodes)  # GraphDef.node = 1
    if function_nodes:
        function = _len(1, _len(1, b"f")) + b"".join(_len(3, n) for n in function_nodes)  # FunctionDef
        graph += _len(2, _len(1, function))  # GraphDef.library = 2 -> FunctionDefLibrary.function = 1
    meta_graph = _len(2, graph)  # MetaGraphDef.graph_def = 2
    return _varint(1 << 3 | 0) + _varint(1) + _len(2, meta_graph)  # SavedModel: version = 1, meta_graphs = 2


def test_clean_savedmodel(tmp_path: Path) -> None:
    path = tmp_path / "saved_model.pb"
    path.write_bytes(
        _saved_model([_node("w", "VarHandleOp"), _node("mm", "MatMul"), _node("r", "RestoreV2")])
    )
    report = scan_path(path)
    assert (report.format, report.verdict.value) == ("savedmodel", "clean")


def test_savedmodel_file_and_python_ops_are_unsafe(tmp_path: Path) -> None:
    path = tmp_path / "saved_model.pb"
    path.write_bytes(_saved_model([_node("a", "MatMul"), _node("leak", "ReadFile")], [_node("p", "PyFunc")]))
    report = scan_path(path)
    assert report.verdict.value == "unsafe"
    assert sorted(f.global_name or "" for f in report.findings) == ["PyFunc", "ReadFile"]


def test_an_unknown_protobuf_is_not_accepted(tmp_path: Path) -> None:
    path = tmp_path / "thing.pb"
    path.write_bytes(_varint(1 << 3) + _varint(5) + _len(9, b"whatever"))
    assert scan_path(path).verdict.value == "unscannable"
