"""A picture of a sound: the waveform of one window, drawn with numpy and Pillow for the page's sound cards.

Each pixel column shows the loudest sample of its slice (the pale envelope) and
its root mean square (the dark body), as audio editors draw a waveform, so
speech, music, a tone and silence look different at a glance.  The scale is
full scale (1.0) for loud windows; a quiet window is scaled up to its own peak,
but never more than 20x, so near silence stays a flat line instead of noise
blown up to fill the card.
"""

from __future__ import annotations

import numpy as np

WIDTH, HEIGHT = 320, 96
BACKGROUND = (238, 242, 251)  # the page's sound blue, pale
ENVELOPE = (160, 181, 230)
BODY = (36, 87, 197)  # the page's accent
QUIETEST_PEAK = 0.05  # below this peak a window is drawn at 20x, no more


def columns(samples: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel column: the peak and the RMS of its slice of the samples, as fractions of the scale."""
    samples = np.asarray(samples, np.float32)
    if samples.size == 0:
        return np.zeros(width), np.zeros(width)
    edges = np.linspace(0, samples.size, width + 1).astype(int)
    peaks, rms = np.zeros(width), np.zeros(width)
    for i in range(width):
        part = samples[edges[i] : max(edges[i + 1], edges[i] + 1)]
        peaks[i] = np.abs(part).max()
        rms[i] = np.sqrt(np.mean(np.square(part, dtype=np.float64)))
    scale = max(float(peaks.max()), QUIETEST_PEAK)
    return np.minimum(peaks / scale, 1.0), np.minimum(rms / scale, 1.0)


def draw(samples: np.ndarray, width: int = WIDTH, height: int = HEIGHT):
    """An RGB Pillow image of the waveform, symmetric about a centre line that is always drawn."""
    from PIL import Image

    peaks, rms = columns(samples, width)
    middle = (height - 1) / 2
    rows = np.abs(np.arange(height)[:, None] - middle)  # each pixel's distance from the centre line
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = BACKGROUND
    pixels[rows <= np.maximum(peaks * middle, 0.5)] = ENVELOPE
    pixels[rows <= np.maximum(rms * middle, 0.5)] = BODY
    return Image.fromarray(pixels, "RGB")
