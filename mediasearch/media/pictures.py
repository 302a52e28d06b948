"""Pictures: any format Pillow (and pillow-heif) reads, upright, 8-bit RGB, as CLIP's image tensor.

Images follow transformers' CLIPImageProcessor (PIL, bicubic shortest-side 224,
centre crop, CLIP mean/std).  Decompression bombs are refused by their header,
and decoder threads share a memory budget so that large pictures take turns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mediasearch.errors import DecodeError
from mediasearch.media.decoded import Decoded, Segment, first_line, out_of_memory

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
IMAGE_SIZE = 224
# Past this a "picture" is a decompression bomb, not a photo.  Chosen for memory: at 4 bytes a
# pixel (RGBA, CMYK, 32-bit grey) the largest picture accepted is 480 MB, and Pillow's decoders
# peak at about twice that; the decoding budget below lets such a picture through alone, which
# with the full-size towers loaded keeps `index` under 2.5 GB.
MAX_PIXELS = 120_000_000
DRAFT_SHORT_SIDE = 448  # reduced-scale decoding keeps at least twice the model's 224
REDUCE_ABOVE = 16_000_000  # pictures larger than this are box-reduced right after decoding


def bomb_reason(width: int, height: int) -> str:
    """Why a picture (or a video's frame) this large is refused."""
    return f"{width}x{height} pixels is over the {MAX_PIXELS // 1_000_000} MP limit: refused as a decompression bomb"


class MemoryBudget:
    """Decoder threads reserve the bytes a decode will hold before starting it.

    A count of threads does not bound memory when one picture can take 600 MB:
    this does.  A job larger than the whole budget runs alone.  In a decoder
    worker process the budget is delegated to the parent's, so that one budget
    bounds every worker together.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.free = capacity
        self._cond = threading.Condition()
        self._remote: tuple[Callable[[int], None], Callable[[int], None]] | None = None

    def delegate(self, reserve: Callable[[int], None], release: Callable[[int], None]) -> None:
        """Reserve through these calls (a worker asking its parent) instead of from this process's budget."""
        self._remote = (reserve, release)

    @contextmanager
    def reserve(self, cost: int):
        cost = min(max(cost, 0), self.capacity)
        if self._remote is not None:
            self._remote[0](cost)
            try:
                yield
            finally:
                self._remote[1](cost)
            return
        with self._cond:
            self._cond.wait_for(lambda: self.free >= cost)
            self.free -= cost
        try:
            yield
        finally:
            with self._cond:
                self.free += cost
                self._cond.notify_all()


IMAGE_BUDGET = MemoryBudget(800 * 1024 * 1024)


_PILLOW_READY = threading.Event()
_PILLOW_LOCK = threading.Lock()


def configure_pillow() -> None:
    """Pillow's process-wide settings, made once: our pixel limit, and HEIF/HEIC through pillow-heif.

    Called from runtime.configure() at start-up and, for library users, on the
    first decode; never changes anything after that.
    """
    if _PILLOW_READY.is_set():
        return
    with _PILLOW_LOCK:
        if _PILLOW_READY.is_set():
            return
        import pillow_heif
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own bomb check, at our limit
        # Every format now, in Pillow's order: Pillow registers a plugin when it first opens its extension and
        # tries formats in that order, so after a TGA an icon was taken for a TGA ("cannot load this image").
        Image.init()
        pillow_heif.register_heif_opener()  # HEIC/HEIF (AVIF is Pillow's own)
        _PILLOW_READY.set()


def decode_picture(path: Path, max_duration: float = 0.0) -> Decoded:
    """A picture as one segment, decoded within the shared memory budget (`max_duration` is for sound)."""
    with IMAGE_BUDGET.reserve(image_cost(path)):
        img, (width, height) = load_image(path)
        tensor = image_tensor(img)
    return Decoded("image", [Segment((None, None), tensor, "image")], {"width": width, "height": height})


def image_cost(path: Path) -> int:
    """Bytes a picture holds at its peak while decoding (the header is enough to tell)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            pixels = img.width * img.height
            jpeg = img.format == "JPEG"
    except Exception:
        return 0  # load_image will say what is wrong with it
    if jpeg and pixels > 4 * DRAFT_SHORT_SIDE**2:
        pixels = max(pixels // 16, 4 * DRAFT_SHORT_SIDE**2)  # decoded at a reduced scale
    return pixels * 4 * 2  # up to 4 bytes a pixel, and one working copy


def load_image(path: Path, reduced: bool = True):
    """Open a picture upright and as 8-bit RGB; return it and its full upright size.

    EXIF orientation is applied; 16-bit pictures are scaled to 8 bits (not
    clipped); transparent pixels are laid over white, the way a viewer with a
    light background shows them; animated formats give their first frame.
    A large JPEG is decoded at a reduced scale (1/2, 1/4 or 1/8, by the
    decoder itself) whose short side stays at least DRAFT_SHORT_SIDE pixels,
    and any picture over REDUCE_ABOVE pixels is box-reduced the same way right
    after decoding, which is several times faster, keeps memory low and changes
    the vector very little (see README); reduced=False decodes every pixel.
    """
    from PIL import Image, ImageOps

    try:
        img = Image.open(path)
        if img.width * img.height > MAX_PIXELS:
            raise DecodeError(path, bomb_reason(img.width, img.height))
        size = img.size
        if reduced and img.format == "JPEG" and min(size) >= 2 * DRAFT_SHORT_SIDE:
            scale = min(size) / DRAFT_SHORT_SIDE
            img.draft(img.mode, (int(size[0] / scale), int(size[1] / scale)))
        img.load()
        if reduced and img.width * img.height > REDUCE_ABOVE:
            img = _reduce(img, min(img.size) // DRAFT_SHORT_SIDE)
        if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            size = size[::-1]
        img = ImageOps.exif_transpose(img)
        return to_rgb(img), size
    except DecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecodeError(path, f"refused as a decompression bomb ({exc})") from exc
    except Exception as exc:
        if out_of_memory(exc):
            raise
        raise DecodeError(path, f"not a readable image ({first_line(exc)})") from exc


# Modes Pillow's reduce() refuses ("image has wrong mode"): bilevel, palette and 16-bit grey.
_UNREDUCIBLE = {"1", "P", "I;16", "I;16B", "I;16L", "I;16N"}


def _reduce(img, factor: int):
    """Box-reduce by `factor` (when at least 2), first making RGB of the modes reduce() cannot average:
    a palette's indices or a bilevel scan's bits are not values to average."""
    if factor < 2:
        return img
    if img.mode in _UNREDUCIBLE:
        img = to_rgb(img)
    return img.reduce(factor)


def to_rgb(img):
    """Any Pillow mode to 8-bit RGB, scaling deep pictures and flattening alpha on white."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        img = Image.fromarray(_eight_bits(np.asarray(img), img.mode == "I"), "L")
    elif img.mode == "F":
        arr = np.array(img, dtype=np.float32)  # a copy of its own, scaled and clipped in place
        if arr.size and arr.max() <= 1.0:
            arr *= 255.0
        img = Image.fromarray(np.clip(arr, 0, 255, out=arr).astype(np.uint8), "L")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _eight_bits(samples: np.ndarray, signed32: bool) -> np.ndarray:
    """16-bit samples (or mode I's 32-bit ones) as 8-bit, in their own width: made through int64 arrays,
    a 64 MP 16-bit scan took 1.1 GB where the decoders' budget reserves 8 bytes a pixel."""
    if not signed32:
        return (samples >> 8).astype(np.uint8)
    top = 255 if samples.max(initial=0) <= 255 else 65535
    clipped = np.clip(samples, 0, top)
    if top == 65535:
        clipped >>= 8
    return clipped.astype(np.uint8)


def image_tensor(img) -> np.ndarray:
    """[3, 224, 224] float32 per CLIPImageProcessor: bicubic short side 224, centre crop."""
    from PIL import Image

    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(IMAGE_SIZE * long / short)
    new_w, new_h = (IMAGE_SIZE, new_long) if w <= h else (new_long, IMAGE_SIZE)
    resized = img.resize((new_w, new_h), resample=Image.Resampling.BICUBIC, reducing_gap=None)
    arr = np.asarray(resized)
    top, left = (new_h - IMAGE_SIZE) // 2, (new_w - IMAGE_SIZE) // 2
    crop = arr[top : top + IMAGE_SIZE, left : left + IMAGE_SIZE].astype(np.float32) / 255.0
    return ((crop - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1).astype(np.float32)
