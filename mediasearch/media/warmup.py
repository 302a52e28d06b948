"""Imported by the decoder workers' forkserver, and by nothing else: it makes the decoders' first, slow calls
there once (librosa's first STFT and mel filterbank take seconds in a fresh process; Pillow registers its
plugins and the HEIF opener; PyAV loads FFmpeg), so that every worker forked from it starts warm."""

from __future__ import annotations

import av  # noqa: F401  (FFmpeg's libraries, loaded once)
import rawpy  # noqa: F401
import soundfile  # noqa: F401
import soxr  # noqa: F401

from mediasearch.media.pictures import configure_pillow, image_tensor
from mediasearch.media.sound import silent_features

configure_pillow()
silent_features()


def _one_picture() -> None:
    from PIL import Image

    image_tensor(Image.new("RGB", (32, 24)))


_one_picture()
