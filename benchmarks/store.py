"""The shared store against the local index: write throughput, query latency and agreement.

    python benchmarks/store.py                 # 10,000 and 100,000 synthetic items
    python benchmarks/store.py --sizes 10000

Each size gets a synthetic library (clustered vectors, 1% sounds, mtimes spread
over 1,000 days; see run.py), a fresh `antfly standalone` on 127.0.0.1 (started
the way the tests start it, tests/antfly_server.py), and then, in the same run:

- writes: the library's first send to Antfly (segments/s, full-index sync) next
  to FAISS building and saving its index from the same catalog;
- queries: `search()` (10 files, the filters below) through FAISS and through
  Antfly at its highest search effort, p50/p95 over the same query vectors;
- agreement: how often both give the same top 10, and each one's recall@10
  against exact search (numpy over every vector, filters applied).

No model runs: queries are data vectors with noise, as in run.py's recall.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
from antfly_server import AntflyServer  # noqa: E402
from run import FILTER_EPOCH, _cpu_flags, say, synthetic_library  # noqa: E402

from mediasearch.bundle import resolve  # noqa: E402
from mediasearch.catalog import decode  # noqa: E402
from mediasearch.index import VectorIndex  # noqa: E402
from mediasearch.search import Filters, search  # noqa: E402
from mediasearch.storage import Storage  # noqa: E402

FILTERS = [
    ("no filter", Filters()),
    ("--type audio (1%)", Filters(kinds=["audio"])),
    ("--in FOLDER (0.1%)", Filters(within=["/synthetic/d0007"])),
    ("--after/--before (10%)", Filters(after=datetime.fromtimestamp(FILTER_EPOCH + 500 * 86_400),
                                       before=datetime.fromtimestamp(FILTER_EPOCH + 600 * 86_400))),
]  # fmt: skip


def exact_top(vectors: np.ndarray, facts: dict, query: np.ndarray, chosen: Filters, k: int = 10) -> list[str]:
    """The true top k files (one segment each here) after the filters, by brute force."""
    mask = np.ones(len(vectors), bool)
    if chosen.kinds:
        mask &= np.isin(facts["kind"], chosen.kinds)
    if chosen.within:
        mask &= np.char.startswith(facts["path"], chosen.within[0].rstrip("/") + "/")
    if chosen.after:
        mask &= facts["mtime"] >= chosen.after.timestamp()
    if chosen.before:
        mask &= facts["mtime"] < chosen.before.timestamp()
    scores = np.where(mask, vectors @ query, -np.inf)
    top = np.argsort(-scores)[:k]
    return [facts["path"][i] for i in top if np.isfinite(scores[i])]


def load_facts(library: Path) -> tuple[np.ndarray, dict]:
    with Storage(library) as lib:
        sql = "SELECT f.path, f.kind, f.mtime FROM segments s JOIN files f ON f.id = s.file_id ORDER BY s.id"
        rows = list(lib.catalog.db.query(sql))
        vectors = np.concatenate([v for _ids, v in lib.catalog.all_vectors()])
    facts = {
        "path": np.array([decode(r["path"]) for r in rows]),
        "kind": np.array([r["kind"] for r in rows]),
        "mtime": np.array([r["mtime"] for r in rows]),
    }
    return vectors, facts


def pct(times: list[float], q: float) -> float:
    return sorted(times)[min(len(times) - 1, int(q * len(times)))] * 1000


def one_size(work: Path, size: int, bundle, queries: int) -> None:
    local = synthetic_library(work, size, bundle)
    shared = work / f"store-lib-{size}"
    shutil.rmtree(shared, ignore_errors=True)
    shutil.copytree(local, shared)
    server = AntflyServer(Path(tempfile.mkdtemp(dir=work, prefix="antfly-")), work / "antfly-bin").start()
    try:
        with Storage(shared, write=True) as writer:
            start = time.perf_counter()
            VectorIndex(writer.catalog).rebuild()
            faiss_build = time.perf_counter() - start
            writer.bind_store(server.url(f"bench{size}"))
            start = time.perf_counter()
            writer.send()
            send = time.perf_counter() - start
            assert writer.sent.error is None, writer.sent.error
        say(f"\n## {size:,} items (1 segment each)\n")
        say(f"writes: Antfly {size / send:,.0f} segments/s ({send:.1f} s, batches of 256, full-index sync); "
            f"FAISS build {size / faiss_build:,.0f} segments/s ({faiss_build:.2f} s); "
            f"ratio {send / faiss_build:.0f}x")  # fmt: skip
        vectors, facts = load_facts(local)
        rng = np.random.default_rng(7)
        picks = rng.choice(len(vectors), queries, replace=False)
        qs = vectors[picks] + rng.normal(0, 0.03, (queries, vectors.shape[1])).astype(np.float32)
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
        say(
            "\n| filter | FAISS p50 / p95 ms | Antfly p50 / p95 ms | same top 10 (set / order) "
            "| recall@10 FAISS | recall@10 Antfly |"
        )
        say("|---|---|---|---|---|---|")
        with Storage(local) as faiss_lib, Storage(shared) as store_lib:
            search(faiss_lib, qs[0], 10)
            search(store_lib, qs[0], 10)
            for name, chosen in FILTERS:
                times = {"faiss": [], "antfly": []}
                same = same_set = 0
                recall = {"faiss": [], "antfly": []}
                for q in qs:
                    truth = exact_top(vectors, facts, q, chosen)
                    for key, lib in (("faiss", faiss_lib), ("antfly", store_lib)):
                        start = time.perf_counter()
                        hits = search(lib, q, 10, chosen)
                        times[key].append(time.perf_counter() - start)
                        got = [h.path for h in hits]
                        recall[key].append(len(set(got) & set(truth)) / max(1, len(truth)))
                        if key == "faiss":
                            faiss_top = got
                    same += got == faiss_top
                    same_set += set(got) == set(faiss_top)
                faiss_ms = f"{pct(times['faiss'], 0.5):.1f} / {pct(times['faiss'], 0.95):.1f}"
                antfly_ms = f"{pct(times['antfly'], 0.5):.1f} / {pct(times['antfly'], 0.95):.1f}"
                rf, ra = statistics.mean(recall["faiss"]), statistics.mean(recall["antfly"])
                say(f"| {name} | {faiss_ms} | {antfly_ms} | {same_set} / {same} of {queries} | {rf:.3f} | {ra:.3f} |")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--work", default=str(Path(__file__).parent / "work"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    bundle = resolve(str(Path(__file__).parent.parent / "tests" / "fixtures" / "bundle"))
    say(f"machine: {os.cpu_count()} CPUs, {_cpu_flags()}")
    for size in [int(s) for s in args.sizes.split(",")]:
        one_size(work, size, bundle, args.queries)


if __name__ == "__main__":
    main()
