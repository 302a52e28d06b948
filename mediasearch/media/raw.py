"""Camera RAW files (LibRaw through rawpy): the embedded preview when it is large enough, else a
half-size development."""

from __future__ import annotations

import os
from pathlib import Path

from mediasearch.errors import DecodeError
from mediasearch.media.decoded import Decoded, Segment, first_line, out_of_memory
from mediasearch.media.pictures import DRAFT_SHORT_SIDE, IMAGE_BUDGET, image_cost, image_tensor, to_rgb
from mediasearch.media.sniff import RAW_EXTENSIONS


def is_raw(path: str | Path) -> bool:
    return os.path.splitext(path)[1].lower() in RAW_EXTENSIONS


RAW_PREVIEW_SHORT_SIDE = DRAFT_SHORT_SIDE  # an embedded preview this large stands for the RAW


def decode_raw(path: Path, max_duration: float = 0.0) -> Decoded:
    """A camera RAW as one segment, decoded within the pictures' memory budget."""
    with IMAGE_BUDGET.reserve(image_cost(path)):
        img, (width, height) = load_raw(path)
        tensor = image_tensor(img)
    return Decoded("image", [Segment((None, None), tensor, "image")], {"width": width, "height": height})


def load_raw(path: Path):
    """A camera RAW upright as 8-bit RGB: its embedded JPEG preview when it is at least 448 px on
    the short side (what cameras show, and fast), else a half-size development by LibRaw."""
    import io

    import rawpy
    from PIL import Image

    try:
        with rawpy.imread(str(path)) as raw:
            size = (raw.sizes.width, raw.sizes.height)
            if raw.sizes.flip in (5, 6):
                size = size[::-1]
            try:
                thumb = raw.extract_thumb()
            except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
                thumb = None
            if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
                preview = Image.open(io.BytesIO(thumb.data))
                if min(preview.size) >= RAW_PREVIEW_SHORT_SIDE:
                    preview = _flip(preview, raw.sizes.flip)
                    return to_rgb(preview), size
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
            return Image.fromarray(rgb), size
    except DecodeError:
        raise
    except Exception as exc:
        if out_of_memory(exc):
            raise
        raise DecodeError(path, f"not a readable camera RAW file ({first_line(exc)})") from exc


def _flip(image, flip: int):
    """LibRaw's flip code applied to a preview (development applies it by itself)."""
    from PIL import Image

    turns = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}
    return image.transpose(turns[flip]) if flip in turns else image
