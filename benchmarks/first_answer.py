"""The first answer: a text query from a fresh process, as a user runs it.

    python scripts/build_fixtures.py --full-size /tmp/fullbundle   # once (see run.py)
    python benchmarks/first_answer.py --bundle /tmp/fullbundle

For each library size (synthetic, clustered vectors; see run.py): one warm-up
query (it may prepare caches: the mapped text tower, the page cache), then
`mediasearch query TEXT --json` in 10 fresh processes, each with a text not
asked before (so no remembered vector helps), wall time from spawn to exit.
Beside it, in the same run: the bare onnxruntime text tower's own
load-and-run time from a fresh process (import, session, one run), on the
bundle's file and on the mapped copy; rclip is not installable offline here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from run import _cpu_flags, say, synthetic_library  # noqa: E402

from mediasearch.bundle import resolve  # noqa: E402

BARE = """
import time, numpy as np
start = time.perf_counter()
import onnxruntime as ort
o = ort.SessionOptions()
o.add_session_config_entry("session.disable_prepacking", "1")
s = ort.InferenceSession({path!r}, o, providers=["CPUExecutionProvider"])
s.run(["pooler_output"], {{i.name: np.ones((1, 77), np.int64) for i in s.get_inputs()}})
"""


def wall(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="a full-size bundle folder")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--work", default=str(Path(__file__).parent / "work" / "first-answer"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    bundle = resolve(args.bundle)
    env = dict(os.environ, MEDIASEARCH_CACHE=str(work / "cache"))
    say(f"machine: {os.cpu_count()} CPUs, {_cpu_flags()}; bundle {bundle.path}")
    for size in [int(s) for s in args.sizes.split(",")]:
        library = synthetic_library(work, size, bundle)
        lib_env = dict(env, MEDIASEARCH_HOME=str(library))
        query = [sys.executable, "-m", "mediasearch", "query", "--json"]
        wall([*query, f"warm-up {size}"], lib_env)
        texts = [f"a photograph, number {i} of {size}, {time.time()}" for i in range(args.runs)]
        times = [wall([*query, text], lib_env) for text in texts]
        say(
            f"{size:>9,} items: first answer p50 {statistics.median(times):.3f} s "
            f"(min {min(times):.3f}, max {max(times):.3f}) over {args.runs} fresh processes, new texts each"
        )
    mapped = work / "cache" / "mapped" / bundle.revision / "text_model.onnx"
    for name, path in (("bundle's text_model.onnx", bundle.file("text_model.onnx")), ("mapped copy", mapped)):
        if path.exists():
            times = [wall([sys.executable, "-c", BARE.format(path=str(path))], env) for _ in range(5)]
            say(f"bare onnxruntime text tower, load and run once ({name}): p50 {statistics.median(times):.3f} s")


if __name__ == "__main__":
    main()
