"""The OCR models with their affine steps folded compute what the shipped models compute (real PP-OCRv5
weights, real onnxruntime sessions), and the folding rule keeps the steps it must keep."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mediasearch import ocr
from mediasearch.ocrgraph import fold_affine, folded


def session(model):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name, shape, steps", [("det", (1, 3, 320, 448), 38), ("rec", (2, 3, 48, 320), 40)])
def test_the_folded_models_compute_what_the_shipped_ones_do(tmp_path, name, shape, steps):
    """Detection and recognition (PP-LCNetV3) lose their affine steps and compute the same; the angle
    model (PP-LCNet, without such steps) is left as it is."""
    path = ocr.model_dir() / name / f"{name}.onnx"
    x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
    shipped, fast = session(str(path)).run(None, {"x": x})[0], session(folded(path)).run(None, {"x": x})[0]
    assert np.abs(shipped - fast).max() < 1e-4
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(tmp_path / "basic.onnx")
    session_of_basic = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    del session_of_basic
    assert fold_affine(onnx.load(options.optimized_model_filepath).graph) == steps


def test_a_reader_on_folded_models_reads_the_same_lines():
    from test_ocr import card

    picture = np.asarray(card("INVOICE No. 2024-0815 Café Müller"))
    plain = ocr.Reader(threads=2)
    plain._sessions = {name: session(str(ocr.model_dir() / name / f"{name}.onnx")) for name in ("det", "cls")}
    plain._session("rec")  # loads the characters, then the shipped recogniser replaces the folded one
    plain._sessions["rec"] = session(str(ocr.model_dir() / "rec" / "rec.onnx"))
    assert [line.text for line in plain.read(picture)] == [line.text for line in ocr.Reader(threads=2).read(picture)]


def conv(name: str, source: str, weights: np.ndarray, pads: int, inits: list) -> onnx.NodeProto:
    inits += [
        numpy_helper.from_array(weights, f"{name}_w"),
        numpy_helper.from_array(np.full(len(weights), 0.1, np.float32), f"{name}_b"),
    ]  # noqa: E501
    k = weights.shape[-1]
    return helper.make_node("Conv", [source, f"{name}_w", f"{name}_b"], [name], kernel_shape=[k, k], pads=[pads] * 4)


def affine(name: str, source: str, a: float, b: float, inits: list) -> list[onnx.NodeProto]:
    inits += [numpy_helper.from_array(np.array([a], np.float32), f"{name}_a"),
              numpy_helper.from_array(np.array([b], np.float32), f"{name}_c")]  # fmt: skip
    return [helper.make_node("Mul", [source, f"{name}_a"], [f"{name}_m"]),
            helper.make_node("Add", [f"{name}_m", f"{name}_c"], [name])]  # fmt: skip


def test_steps_fold_after_a_convolution_and_before_a_pointwise_one_never_before_padding():
    """conv -> affine -> relu -> affine -> padded 3x3 conv (kept: its padding would see b), and relu ->
    affine -> 1x1 conv (folded): the same outputs, and exactly the two foldable steps gone."""
    rng = np.random.default_rng(0)
    inits: list = []
    nodes = [conv("c1", "x", rng.normal(size=(4, 3, 3, 3)).astype(np.float32), 1, inits)]
    nodes += affine("s1", "c1", 1.7, -0.3, inits)
    nodes.append(helper.make_node("Relu", ["s1"], ["r1"]))
    nodes += affine("s2", "r1", 0.6, 0.45, inits)
    nodes.append(conv("c2", "s2", rng.normal(size=(4, 4, 3, 3)).astype(np.float32), 1, inits))
    nodes += affine("s3", "r1", -1.2, 0.8, inits)
    nodes.append(conv("c3", "s3", rng.normal(size=(5, 4, 1, 1)).astype(np.float32), 0, inits))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 9, 11])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("c2", "c3")], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(size=(1, 3, 9, 11)).astype(np.float32)
    before = session(model.SerializeToString()).run(None, {"x": x})
    assert fold_affine(model.graph) == 2
    after = session(model.SerializeToString()).run(None, {"x": x})
    for want, got in zip(before, after, strict=True):
        assert np.abs(want - got).max() < 1e-4
    left = [n.input[1] for n in model.graph.node if n.op_type in ("Mul", "Add")]
    assert left == ["s2_a", "s2_c"], "only the step before the padded convolution stays"
