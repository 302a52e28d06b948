"""The OCR models' graphs with their scalar affine steps folded into the convolutions: the same function, run
with fewer passes over the feature maps.

PP-LCNetV3, the backbone of PP-OCRv5's detection and recognition, follows each convolution with a learnable
affine step (x * a + b, two scalars) before its activation, and each activation with another one.
onnxruntime runs every such step as a pass of its own over the feature map: elementwise Mul and Add were
about 40% of recognition's time, which grows with the text on a page. Folded into a convolution's weights and
bias they cost nothing, and the result is the same up to float rounding (tested):

- a step right after a convolution, the convolution's only use, becomes its weights times a and its bias
  times a plus b;
- a step feeding a 1x1 convolution without padding, its only use, becomes that convolution's weights times a
  and its bias plus b times the sum of each output's weights. (Before a padded convolution it cannot: the
  padding's zeros would stand where the original had b.)

onnxruntime's own basic, hardware-independent passes run first (a convolution's bias Add is then part of
it); its hardware-specific ones run when the session is made, as for any model.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


def folded(path: Path) -> bytes:
    """The ONNX model at `path`, after onnxruntime's basic passes, with its affine steps folded."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="mediasearch-ocr-") as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(tmp) / "basic.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        model = onnx.load(options.optimized_model_filepath)
    fold_affine(model.graph)
    return model.SerializeToString()


def fold_affine(graph) -> int:
    """Fold the scalar affine steps around the graph's convolutions into them (in place); how many were."""
    from onnx import numpy_helper

    weights = {t.name: t for t in graph.initializer}
    graph_outputs = {o.name for o in graph.output}
    uses: dict[str, list] = defaultdict(list)
    made_by = {}
    for node in graph.node:
        for name in node.input:
            uses[name].append(node)
        for name in node.output:
            made_by[name] = node

    def scalar(node, op: str) -> tuple[float, str] | None:
        """(the constant, the other input) of a Mul or Add by a one-value constant."""
        if node is None or node.op_type != op or len(node.input) != 2:
            return None
        for mine, other in (node.input, node.input[::-1]):
            if mine in weights and int(np.prod(weights[mine].dims)) == 1:
                return float(numpy_helper.to_array(weights[mine]).reshape(-1)[0]), other
        return None

    def sole_use(name: str):
        """The one node using `name`, when one does and it is not an output of the graph."""
        return uses[name][0] if name not in graph_outputs and len(uses[name]) == 1 else None

    def set_weights(conv, w: np.ndarray, b: np.ndarray) -> None:
        names = [f"{conv.output[0]}/folded_w", f"{conv.output[0]}/folded_b"]
        for name, value in zip(names, (w, b), strict=True):
            tensor = numpy_helper.from_array(value.astype(np.float32), name)
            graph.initializer.append(tensor)
            weights[name] = tensor
        del conv.input[1:]
        conv.input.extend(names)

    def conv_weights(conv) -> tuple[np.ndarray, np.ndarray]:
        w = numpy_helper.to_array(weights[conv.input[1]])
        b = numpy_helper.to_array(weights[conv.input[2]]) if len(conv.input) > 2 else np.zeros(w.shape[0], np.float32)
        return w, b

    dropped: set[int] = set()
    for conv in [n for n in graph.node if n.op_type == "Conv" and n.input[1] in weights]:
        if len(conv.input) > 2 and conv.input[2] not in weights:
            continue
        mul = sole_use(conv.output[0])
        times = scalar(mul, "Mul")
        add = sole_use(mul.output[0]) if times else None
        plus = scalar(add, "Add")
        if times and plus:  # conv -> * a -> + b
            w, b = conv_weights(conv)
            set_weights(conv, w * times[0], b * times[0] + plus[0])
            conv.output[0] = add.output[0]
            made_by[add.output[0]] = conv
            dropped |= {id(mul), id(add)}
        add = made_by.get(conv.input[0])
        plus = scalar(add, "Add") if add is not None and sole_use(add.output[0]) is conv else None
        mul = made_by.get(plus[1]) if plus else None
        times = scalar(mul, "Mul") if mul is not None and sole_use(mul.output[0]) is add else None
        if times and plus and _pointwise(conv):  # * a -> + b -> 1x1 conv
            w, b = conv_weights(conv)
            set_weights(conv, w * times[0], b + plus[0] * w.reshape(w.shape[0], -1).sum(axis=1))
            conv.input[0] = times[1]
            dropped |= {id(mul), id(add)}
    kept = [n for n in graph.node if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for n in graph.node for name in n.input}
    unused = [t for t in graph.initializer if t.name not in used]
    for tensor in unused:
        graph.initializer.remove(tensor)
    return len(dropped) // 2


def _pointwise(conv) -> bool:
    """A 1x1 convolution without padding (its inputs' constants can move into its bias)."""
    attrs = {a.name: a for a in conv.attribute}
    kernel = list(attrs["kernel_shape"].ints) if "kernel_shape" in attrs else None
    pads = list(attrs["pads"].ints) if "pads" in attrs else []
    auto = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
    return kernel == [1, 1] and not any(pads) and auto in ("NOTSET", "VALID")
