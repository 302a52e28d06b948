"""mediasearch speed harness: run by hand, prints figures and ratios from one run.

    python scripts/build_fixtures.py --full-size /tmp/fullbundle   # ~900 MB, once
    python benchmarks/run.py --bundle /tmp/fullbundle

Everything is measured in the same run on the same machine, so the ratios
(end-to-end / raw model floor, int8 / fp32) are what to compare; absolute
figures depend on the machine.  Work files go to benchmarks/work (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from PIL import Image  # noqa: E402

from mediasearch import media  # noqa: E402
from mediasearch.bundle import resolve  # noqa: E402
from mediasearch.catalog import Catalog, encode  # noqa: E402
from mediasearch.index import VectorIndex  # noqa: E402
from mediasearch.ingest import Indexer  # noqa: E402
from mediasearch.model import TOWERS, Embedder  # noqa: E402
from mediasearch.places import gazetteer  # noqa: E402
from mediasearch.precision import with_precision  # noqa: E402
from mediasearch.search import combine, search  # noqa: E402
from mediasearch.storage import Storage  # noqa: E402

RESULTS: dict = {}


def query_vector(lib, make, texts, likes, nots) -> np.ndarray:
    """A text query's vector, as the search interface makes it (the harness times the encoding too)."""
    return combine(list(make().embed_texts(texts)), [])


def say(line: str) -> None:
    print(line, flush=True)


# ----------------------------------------------------------------------------- corpus


def photo(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A picture with shapes, gradients and sensor-like noise: it does not compress to nothing."""
    small = rng.integers(0, 255, (height // 64 + 2, width // 64 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    arr = np.asarray(img).astype(np.int16)
    arr += rng.normal(0, 9, arr.shape).astype(np.int16)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def sound(seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.2 * np.sin(2 * np.pi * (200 + 50 * np.sin(t / 3)) * t)
    return np.stack([tone + rng.normal(0, 0.03, t.shape), tone * 0.8 + rng.normal(0, 0.03, t.shape)], 1)


def make_corpus(work: Path, images: int) -> tuple[Path, Path]:
    pics, sounds = work / "corpus" / "pictures", work / "corpus" / "sounds"
    if (work / "corpus" / "done").exists():
        return pics, sounds
    shutil.rmtree(work / "corpus", ignore_errors=True)
    pics.mkdir(parents=True)
    sounds.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(images):
        if i % 4 == 3:
            photo(1600, 1200, rng).save(pics / f"png{i:03}.png")
        elif i % 4 == 2:
            photo(4000, 3000, rng).save(pics / f"12mp{i:03}.jpg", quality=90)
        else:
            photo(2048, 1536, rng).save(pics / f"3mp{i:03}.jpg", quality=90)
    for name, seconds, rate, fmt in [
        ("a.wav", 5, 48000, "WAV"),
        ("b.flac", 30, 44100, "FLAC"),
        ("c.mp3", 60, 44100, "MP3"),
        ("d.wav", 180, 44100, "WAV"),
        ("e.mp3", 12, 48000, "MP3"),
        ("f.flac", 20, 48000, "FLAC"),
    ]:
        sf.write(sounds / name, sound(seconds, rate, rng).astype(np.float32), rate, format=fmt)
    (work / "corpus" / "done").write_text("ok")
    return pics, sounds


# ----------------------------------------------------------------------------- model floor vs end to end


def floor(embedder: Embedder, pics: Path, sounds: Path) -> dict:
    """The towers alone on ready tensors, at the batch sizes the indexer uses."""
    images = [media.decode(p).tensors[0] for p in sorted(pics.iterdir())]
    windows = [t for p in sorted(sounds.iterdir()) for t in media.decode(p).tensors]
    pixels, feats = np.stack(images), np.stack(windows)
    embedder.embed_pixels(pixels[:2])
    embedder.embed_features(feats[:2])
    image_rate = len(pixels) / _median_seconds(lambda: embedder.embed_pixels(pixels))
    window_rate = len(feats) / _median_seconds(lambda: embedder.embed_features(feats))
    return {"images_per_s": image_rate, "windows_per_s": window_rate, "images": len(pixels), "windows": len(feats)}


def _median_seconds(work, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def end_to_end(embedder: Embedder, folder: Path, work: Path, name: str) -> dict:
    """mediasearch's own indexing pass (walk, hash, decode, embed, SQLite, FAISS), towers already loaded."""
    library = work / f"lib-{name}"
    shutil.rmtree(library, ignore_errors=True)
    with Storage(library, write=True) as lib:
        lib.bind(embedder.bundle)
        start = time.perf_counter()
        summary = Indexer(lib, lambda: embedder).scan(lib.add_folders([str(folder.resolve())]))
        lib.save_index()
        seconds = time.perf_counter() - start
        segments = lib.catalog.segment_count()
        audio_seconds = lib.catalog.conn.execute("SELECT coalesce(sum(duration), 0) FROM files").fetchone()[0]
    assert summary.failed == 0, summary.failures
    return {"seconds": seconds, "files": summary.added, "segments": segments, "audio_seconds": audio_seconds}


def cli_run(args: list[str], env: dict) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) and stdout of one mediasearch command.

    GNU time reports the peak RSS: a forked child's own ru_maxrss would count
    this (large) benchmark process's pages from before the exec.
    """
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "mediasearch", *args],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mediasearch {' '.join(args)} failed: {done.stderr}")
    return time.perf_counter() - start, int(done.stderr.strip().splitlines()[-1]) * 1024, done.stdout


# ----------------------------------------------------------------------------- synthetic libraries


def clustered(count: int, seed: int, clusters: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, 512)).astype(np.float32)
    out = np.empty((count, 512), np.float32)
    for i in range(0, count, 100_000):
        n = min(100_000, count - i)
        pts = centres[rng.integers(0, clusters, n)] + rng.normal(scale=0.35, size=(n, 512)).astype(np.float32)
        out[i : i + n] = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    return out


def synthetic_library(work: Path, count: int, bundle, files_on_disk: bool = False) -> Path:
    """A library of `count` fake picture files with clustered vectors (written straight to SQLite)."""
    library = work / f"lib-synthetic-v6t-{count}{'-disk' if files_on_disk else ''}"  # capture columns, a trip
    if (library / "done").exists():
        return _index_current(library)
    shutil.rmtree(library, ignore_errors=True)
    lib = Storage(library, write=True)
    lib.bind(bundle)
    catalog = lib.catalog
    root = work / f"files-{count}" if files_on_disk else Path("/synthetic")
    if files_on_disk:
        shutil.rmtree(root, ignore_errors=True)
        for i in range(count):
            folder = root / f"d{i // 1000:04}"
            if i % 1000 == 0:
                folder.mkdir(parents=True)
            (folder / f"f{i:07}.jpg").write_bytes(b"x")
    root_id = catalog.add_root(str(root))
    vectors = clustered(count, seed=1)
    cities = _synthetic_cities()
    with catalog.transaction():
        for start in range(0, count, 50_000):
            rows, segs = [], []
            for i in range(start, min(count, start + 50_000)):
                path = root / f"d{i // 1000:04}" / f"f{i:07}.jpg"
                kind = "audio" if i % 100 == 0 else "image"  # 1% sounds, as in the filter table
                mtime = path.stat().st_mtime if files_on_disk else FILTER_EPOCH + (i % 1000) * 86_400.0
                rows.append(
                    (
                        i + 1,
                        root_id,
                        encode(str(path)),
                        encode(path.relative_to(root).as_posix()),
                        kind,
                        1,
                        mtime,
                        "indexed",
                        *_synthetic_capture(i, cities),
                    )
                )
                segs.append((i + 1, i + 1, vectors[i].tobytes()))
            catalog.conn.executemany(
                "INSERT INTO files (id, root_id, path, rel, kind, size, mtime, status, taken, taken_source, latitude, "
                "longitude, city, region, country) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            catalog.conn.executemany("INSERT INTO segments (id, file_id, vector) VALUES (?,?,?)", segs)
        catalog.set("generation", "1")
    lib.save_index()
    lib.close()
    (library / "done").write_text("ok")
    return library


FILTER_EPOCH = 1_500_000_000.0  # synthetic mtimes: one day apart per file number mod 1000, from July 2017
TAKEN_EPOCH = 1_262_304_000.0  # synthetic capture times: one day apart per (file number * 37) mod 3650, from 2010
CITY_SPREAD = 0.1  # degrees either way (~10 km) around each of the synthetic places' centres


def _synthetic_cities() -> list[tuple[float, float, tuple[str, str, str]]]:
    """100 of the most populous places (Lisbon and Porto among them): where 30% of the files were taken."""
    g = gazetteer()
    order = np.argsort(-g.population)
    chosen = [int(i) for i in order[:98]] + [
        max(g.cities[n], key=lambda i: g.population[i]) for n in ("lisbon", "porto")
    ]
    chosen.append(max(g.cities["reykjavik"], key=lambda i: g.population[i]))  # the trip's, last
    out = []
    for i in chosen:
        row = g.rows[i]
        out.append((row["latitude"], row["longitude"], (row["city"], row.get("state") or "", g.country(row))))
    return out


TRIP_FOLDER, TRIP_START = 42, 1_622_505_600.0  # d0042: a June 2021 trip to Reykjavik, its 1,000 photos together


def _synthetic_capture(i: int, cities: list) -> tuple:
    """File i's capture columns: EXIF-dated over ten years, 3 files in 10 with coordinates near one of 100
    cities, scattered through the whole library (a worst case: every folder holds every city and year);
    and one folder that is a trip, as a real camera roll's folders are, its photos together."""
    if i // 1000 == TRIP_FOLDER:
        lat, lon, (city, region, country) = cities[-1]
        jitter = ((i * 7919) % 2001 / 1000 - 1) * CITY_SPREAD, ((i * 104_729) % 2001 / 1000 - 1) * CITY_SPREAD
        return (TRIP_START + (i % 1000) * 2000.0, "exif", lat + jitter[0], lon + jitter[1], city, region, country)
    taken = TAKEN_EPOCH + (i * 37 % 3650) * 86_400.0
    if i % 10 >= 3:
        return (taken, "exif", None, None, None, None, None)
    lat, lon, (city, region, country) = cities[(i // 10) % (len(cities) - 1)]
    jitter = ((i * 7919) % 2001 / 1000 - 1) * CITY_SPREAD, ((i * 104_729) % 2001 / 1000 - 1) * CITY_SPREAD
    return (taken, "exif", lat + jitter[0], lon + jitter[1], city, region, country)


def filter_table(library: Path, embedder: Embedder, repeats: int = 5) -> list[dict]:
    """The issue's filter table in a warm process: p50 time (text encoding included) and result count."""
    from datetime import datetime

    from mediasearch.places import parse_near
    from mediasearch.search import Filters

    folder = str(Path("/synthetic") / "d0007")
    rows = [
        ("no filter", Filters()),
        ("--type audio (1% match)", Filters(kinds=["audio"])),
        ("--in FOLDER (0.1% match)", Filters(within=[folder])),
        ("--type audio --in FOLDER (10 files match)", Filters(kinds=["audio"], within=[folder])),
        ("--after a date nothing matches", Filters(after=datetime(2031, 1, 1))),
        ("--after/--before the trip's month (0.1%, one folder)", Filters(after=datetime(2021, 6, 1),
                                                                     before=datetime(2021, 7, 1))),
        ("--near Reykjavik (the trip: 0.1%, one folder)", Filters(near=parse_near("Reykjavik"))),
        ("--near Iceland (the trip's country)", Filters(near=parse_near("Iceland"))),
        ("--after/--before a month (0.8%, spread)", Filters(after=datetime(2015, 3, 1), before=datetime(2015, 4, 1))),
        ("--near Lisbon (25 km, 0.3%, spread)", Filters(near=parse_near("Lisbon"))),
        ("--near 38.72,-9.14,5 (5 km, 0.06%, spread)", Filters(near=parse_near("38.72,-9.14,5"))),
        ("--near Portugal (country, 0.6%, spread)", Filters(near=parse_near("Portugal"))),
        ("--near Lisbon --after/--before a year (0.03%)", Filters(near=parse_near("Lisbon"), after=datetime(2015, 1, 1),
                                                         before=datetime(2016, 1, 1))),
    ]  # fmt: skip
    out = []
    with Storage(library) as lib:
        search(lib, query_vector(lib, lambda: embedder, ["warm up"], [], []), 10)
        for name, filters in rows:
            times, count = [], 0
            for i in range(repeats):
                start = time.perf_counter()
                vector = query_vector(lib, lambda: embedder, [f"a dog barking {name} {i}"], [], [])
                count = len(search(lib, vector, 10, filters))
                times.append(time.perf_counter() - start)
            out.append({"query": name, "p50_ms": 1000 * statistics.median(times), "results": count})
    return out


def _index_current(library: Path) -> Path:
    """Save the index in the form the current thresholds ask for, so timings never include a rebuild."""
    with Storage(library, write=True) as lib:
        index = lib.vectors
        if not index.saved_is_current() or not index._kind_fits():
            index.rebuild()
            index.save()
    return library


def query_latency(library: Path, embedder: Embedder, queries: int = 40) -> dict:
    lib = Storage(library)
    catalog, vectors = lib.catalog, lib.vectors
    texts = [f"a photo of {w} number {i}" for i, w in enumerate(["a dog", "rain", "a city", "the sea"] * 20)]
    embedder.embed_texts(["warm up"])
    search(lib, query_vector(lib, lambda: embedder, ["warm"], [], []), 10)
    times = []
    for text in texts[:queries]:
        start = time.perf_counter()
        search(lib, query_vector(lib, lambda: embedder, [text], [], []), 10)
        times.append(time.perf_counter() - start)
    times.sort()
    result = {
        "p50_ms": 1000 * statistics.median(times),
        "p95_ms": 1000 * times[int(0.95 * (len(times) - 1))],
        "approximate": vectors.approximate,
    }
    if vectors.approximate:
        result["recall_at_10"] = recall(vectors, catalog)
    lib.close()
    return result


def recall(vectors: VectorIndex, catalog: Catalog, queries: int = 100) -> dict:
    """recall@10 against exact search, for queries near the data and for random directions."""
    import faiss

    exact = faiss.IndexIDMap2(faiss.IndexFlatIP(512))
    for ids, vecs in catalog.all_vectors():
        exact.add_with_ids(vecs, ids)
    rng = np.random.default_rng(99)
    stored = np.stack([exact.reconstruct(int(i)) for i in rng.integers(1, exact.ntotal + 1, queries)])
    near = stored + rng.normal(scale=0.35 / np.sqrt(512), size=stored.shape).astype(np.float32)
    random = rng.normal(size=(queries, 512)).astype(np.float32)
    out = {}
    for name, qs in (("near_data", near), ("random_directions", random)):
        qs = qs / np.linalg.norm(qs, axis=1, keepdims=True)
        hits = 0
        for q in qs:
            _, want = exact.search(q[None], 10)
            _, got = vectors.search(q, 10)
            hits += len(set(want[0]) & set(got))
        out[name] = hits / (10 * queries)
    return out


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="a full-size bundle (scripts/build_fixtures.py --full-size)")
    ap.add_argument("--work", type=Path, default=Path(__file__).parent / "work")
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--sizes", default="10000,100000,1000000", help="stored vectors for the query benchmark")
    ap.add_argument("--rescan-files", type=int, default=100_000)
    ap.add_argument("--skip-int8", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved floor / end-to-end runs (medians)")
    ap.add_argument("--filters-only", action="store_true", help="only the filter table at --sizes (any bundle)")
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ["MEDIASEARCH_CACHE"] = str(work / "cache")
    env = dict(os.environ, MEDIASEARCH_CACHE=str(work / "cache"))
    if args.filters_only:
        filters_only(resolve(args.bundle), [int(s) for s in args.sizes.split(",")], work)
        return

    say(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{_cpu_flags()}; python {platform.python_version()}"
    )
    bundle = resolve(args.bundle)
    pics, sounds = make_corpus(work, args.images)

    # 1. floor vs end to end, fp32, interleaved and repeated: the machine is noisy, so medians
    embedder = Embedder(bundle)
    start = time.perf_counter()
    embedder.probe_all()
    RESULTS["towers_load_and_probe_s"] = time.perf_counter() - start
    runs = [
        (
            floor(embedder, pics, sounds),
            end_to_end(embedder, pics, work, "pictures"),
            end_to_end(embedder, sounds, work, "sounds"),
        )
        for _ in range(args.repeats)
    ]
    fl = {k: statistics.median(r[0][k] for r in runs) for k in ("images_per_s", "windows_per_s", "images", "windows")}
    img_rate = statistics.median(r[1]["files"] / r[1]["seconds"] for r in runs)
    win_rate = statistics.median(r[2]["segments"] / r[2]["seconds"] for r in runs)
    audio_rate = statistics.median(r[2]["audio_seconds"] / r[2]["seconds"] for r in runs)
    RESULTS["fp32"] = {
        "floor_images_per_s": fl["images_per_s"],
        "floor_windows_per_s": fl["windows_per_s"],
        "e2e_images_per_s": img_rate,
        "e2e_windows_per_s": win_rate,
        "e2e_audio_seconds_per_s": audio_rate,
        "image_ratio": img_rate / fl["images_per_s"],
        "audio_ratio": win_rate / fl["windows_per_s"],
        "runs": len(runs),
    }
    r = RESULTS["fp32"]
    say(
        f"fp32 images: floor {r['floor_images_per_s']:.2f}/s, end-to-end {img_rate:.2f}/s, "
        f"ratio {r['image_ratio']:.2f}  ({fl['images']} pictures)"
    )
    say(
        f"fp32 audio: floor {r['floor_windows_per_s']:.2f} windows/s, end-to-end {win_rate:.2f} windows/s "
        f"({r['e2e_audio_seconds_per_s']:.1f} s of audio per s), ratio {r['audio_ratio']:.2f}  "
        f"({fl['windows']} windows)"
    )

    # 2. the whole command: wall time, peak RSS, no-change rescan
    lib = work / "lib-cli"
    shutil.rmtree(lib, ignore_errors=True)
    cli_env = dict(env, MEDIASEARCH_HOME=str(lib))
    wall, rss, _ = cli_run(["index", str(pics.parent), "--model", args.bundle, "--json"], cli_env)
    rescan, _, out = cli_run(["index", "--json"], cli_env)
    RESULTS["cli"] = {"index_wall_s": wall, "peak_rss_mb": rss / 1e6, "no_change_rescan_s": rescan}
    say(
        f"mediasearch index (whole corpus, new process): {wall:.1f}s wall, peak RSS {rss / 1e6:.0f} MB; "
        f"no-change rescan {rescan:.2f}s ({json.loads(out)['unchanged']} files)"
    )

    # 3. no-change rescan of many files
    big = synthetic_library(work, args.rescan_files, bundle, files_on_disk=True)
    rescan, _, out = cli_run(["index", "--json"], dict(env, MEDIASEARCH_HOME=str(big)))
    RESULTS["rescan_100k_s"] = rescan
    say(f"no-change rescan of {json.loads(out)['unchanged']} files: {rescan:.2f}s (new process, wall)")

    # 4. query latency and start-up
    RESULTS["query"] = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        library = synthetic_library(work, size, bundle)
        q = query_latency(library, embedder)
        start_wall, start_rss, _ = cli_run(
            ["query", "a dog barking", "--json"], dict(env, MEDIASEARCH_HOME=str(library))
        )
        q["first_query_wall_s"] = start_wall
        q["first_query_rss_mb"] = start_rss / 1e6
        RESULTS["query"][size] = q
        q["filters"] = filter_table(library, embedder)
        for row in q["filters"]:
            say(f"  {row['query']:<44} p50 {row['p50_ms']:6.1f} ms, {row['results']} results")
        rec = q.get("recall_at_10")
        extra = (
            f", recall@10 {rec['near_data']:.3f} near the data, {rec['random_directions']:.3f} for random"
            if rec
            else ""
        )
        say(
            f"query at {size:>9,} vectors ({'IVF' if q['approximate'] else 'exact'}): p50 {q['p50_ms']:.1f} ms, "
            f"p95 {q['p95_ms']:.1f} ms (text encoding included){extra}; first query in a new process "
            f"{start_wall:.2f}s, RSS {start_rss / 1e6:.0f} MB"
        )

    # 5. int8
    if not args.skip_int8:
        start = time.perf_counter()
        int8 = Embedder(with_precision(bundle, "int8", say))
        RESULTS["int8_prepare_s"] = time.perf_counter() - start
        int8.probe_all()
        pairs = [
            (floor(int8, pics, sounds), floor(embedder, pics, sounds), text_rate(int8), text_rate(embedder))
            for _ in range(args.repeats)
        ]
        fl8 = {k: statistics.median(p[0][k] for p in pairs) for k in ("images_per_s", "windows_per_s")}
        fl = {k: statistics.median(p[1][k] for p in pairs) for k in ("images_per_s", "windows_per_s")}
        text8 = statistics.median(p[2] for p in pairs)
        text32 = statistics.median(p[3] for p in pairs)
        cos = json.loads((int8.bundle.path / "fidelity.json").read_text())
        RESULTS["int8"] = {
            "floor_images_per_s": fl8["images_per_s"],
            "floor_windows_per_s": fl8["windows_per_s"],
            "image_speedup": fl8["images_per_s"] / fl["images_per_s"],
            "audio_speedup": fl8["windows_per_s"] / fl["windows_per_s"],
            "text_speedup": text8 / text32,
            "cosine_vs_fp32": cos,
            "batched": {k: int8.towers[k].batched for k in TOWERS},
        }
        r = RESULTS["int8"]
        say(
            f"int8: images {fl8['images_per_s']:.2f}/s ({r['image_speedup']:.2f}x fp32), audio "
            f"{fl8['windows_per_s']:.2f} windows/s ({r['audio_speedup']:.2f}x), text {r['text_speedup']:.2f}x; "
            f"lowest cosine vs fp32 {cos}; made once in {RESULTS['int8_prepare_s']:.0f}s"
        )
    RESULTS["benchmark_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    (work / "results.json").write_text(json.dumps(RESULTS, indent=2, default=str))
    say(f"results written to {work / 'results.json'}")


def filters_only(bundle, sizes: list[int], work: Path) -> None:
    """The filter table alone (python benchmarks/run.py --bundle tests/fixtures/bundle --filters-only
    --sizes 100000,1000000): the small text tower keeps the times to the search itself."""
    embedder = Embedder(bundle)
    RESULTS["filters"] = {}
    for size in sizes:
        start = time.perf_counter()
        library = synthetic_library(work, size, bundle)
        say(f"{size:,} items ready in {time.perf_counter() - start:.0f}s")
        RESULTS["filters"][size] = filter_table(library, embedder, repeats=7)
        for row in RESULTS["filters"][size]:
            say(f"  {row['query']:<48} p50 {row['p50_ms']:6.1f} ms, {row['results']} results")
    (work / "filters.json").write_text(json.dumps(RESULTS, indent=2))


def text_rate(embedder: Embedder, count: int = 64) -> float:
    texts = [f"a photograph of thing number {i} in the garden" for i in range(count)]
    embedder.embed_texts(texts[:4])
    return count / _median_seconds(lambda: embedder.embed_texts(texts))


def _cpu_flags() -> str:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "cpu flags unknown"
    wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"]
    return "flags: " + " ".join(f for f in wanted if f in flags)


if __name__ == "__main__":
    main()
