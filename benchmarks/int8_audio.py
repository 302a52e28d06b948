"""int8 against fp32 for the audio tower (HTSAT): dynamic, and static (calibrated) quantisation.

    python benchmarks/int8_audio.py --bundle /tmp/fullbundle                 # measure here
    python benchmarks/int8_audio.py --bundle /tmp/fullbundle --pack DIR      # a 1.5 MB pack to carry
    python benchmarks/int8_audio.py --packed DIR                             # measure there

mediasearch ships dynamic int8 (precision.py).  This harness also makes the
static variant it was compared with (every MatMul, attention products included,
with activation ranges calibrated on synthetic log-mels; QOperator format) and
prints, beside the CPU's flags, interleaved medians of one 10 s window at 2
threads and at all threads, with each variant's cosine to fp32.  A pack is the
tower's graph without its weights plus each weight's mean and standard
deviation: weights redrawn from those run at the same speed (kernels do not
depend on values), so a machine without the bundle can be measured; cosines
from redrawn weights say little about the real ones.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu() -> str:
    info = Path("/proc/cpuinfo").read_text()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    return f"{name}; {os.cpu_count()} CPUs; flags: {' '.join(f for f in FLAGS if f' {f} ' in info)}"


def pack(source: Path, folder: Path) -> None:
    """The graph without its float weights, and each weight's mean and standard deviation."""
    model = onnx.load(str(source))
    stats = {}
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and int(np.prod(init.dims or [1])) * 4 > 4096:
            values = numpy_helper.to_array(init)
            stats[init.name] = [list(init.dims), float(values.mean()), float(values.std())]
            init.ClearField("raw_data")
            init.ClearField("float_data")
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "audio_graph.onnx"))
    (folder / "audio_stats.json").write_text(json.dumps(stats))


def unpack(folder: Path, out: Path) -> None:
    model = onnx.load(str(folder / "audio_graph.onnx"))
    stats = json.loads((folder / "audio_stats.json").read_text())
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        if init.name in stats:
            dims, mean, std = stats[init.name]
            drawn = rng.standard_normal(dims, dtype=np.float32) * np.float32(std) + np.float32(mean)
            init.CopyFrom(numpy_helper.from_array(drawn, init.name))
    onnx.save(model, str(out))


def features(count: int, seed: int) -> list[np.ndarray]:
    """Log-mel-like inputs: the calibration set and the timed window."""
    rng = np.random.default_rng(seed)
    return [rng.normal(-40, 15, (1, 1, 1001, 64)).astype(np.float32) for _ in range(count)]


class Calibration(CalibrationDataReader):
    def __init__(self):
        self.inputs = iter({"input_features": f} for f in features(4, 1))

    def get_next(self):
        return next(self.inputs, None)


def variants(fp32: Path, work: Path) -> dict[str, Path]:
    dynamic, prepared, static = work / "dynamic.onnx", work / "prepared.onnx", work / "static.onnx"
    if not dynamic.exists():  # as precision.py makes it
        quantize_dynamic(str(fp32), str(dynamic), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         per_channel=True, reduce_range=True)  # fmt: skip
    if not static.exists():
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(static), Calibration(), quant_format=QuantFormat.QOperator,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=True, op_types_to_quantize=["MatMul", "Gemm", "Conv"])  # fmt: skip
    return {"fp32": fp32, "int8 dynamic": dynamic, "int8 static": static}


def measure(models: dict[str, Path], runs: int) -> None:
    window = features(1, 9)[0]
    for threads in (2, 0):
        sessions = {}
        for name, path in models.items():
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sessions[name] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        outputs = {name: s.run(["pooler_output"], {"input_features": window})[0][0] for name, s in sessions.items()}
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(runs):  # interleaved, so a noisy neighbour hits every variant alike
            for name, session in sessions.items():
                start = time.perf_counter()
                session.run(["pooler_output"], {"input_features": window})
                times[name].append(time.perf_counter() - start)
        base = statistics.median(times["fp32"])
        reference = outputs["fp32"] / np.linalg.norm(outputs["fp32"])
        for name in sessions:
            median = statistics.median(times[name])
            cosine = float(outputs[name] @ reference / np.linalg.norm(outputs[name]))
            print(f"{threads or 'all'} threads  {name:13s} {median * 1000:7.1f} ms  {base / median:4.2f}x  "
                  f"cosine to fp32 {cosine:.4f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="a full-size bundle folder")
    parser.add_argument("--pack", type=Path, help="write a weightless pack of its audio tower here, and stop")
    parser.add_argument("--packed", type=Path, help="measure from a pack instead of a bundle")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "work" / "int8-audio")
    args = parser.parse_args()
    if args.bundle and args.pack:
        pack(args.bundle / "audio_model.onnx", args.pack)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    if args.packed:
        fp32 = args.work / "fp32-redrawn.onnx"
        if not fp32.exists():
            unpack(args.packed, fp32)
    elif args.bundle:
        fp32 = args.bundle / "audio_model.onnx"
    else:
        parser.error("give --bundle or --packed")
    print(f"cpu: {cpu()}; onnxruntime {ort.__version__}", flush=True)
    measure(variants(fp32, args.work), args.runs)


if __name__ == "__main__":
    main()
