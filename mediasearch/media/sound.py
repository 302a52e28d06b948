"""Sound: any recording libsndfile or FFmpeg reads, as 10 s log-mel windows read front to back.

Audio follows ClapFeatureExtractor with the larger_clap settings (48 kHz mono,
repeat-pad to 10 s, Slaney log-mel, 1001x64).  librosa alone takes about half
a second to import, so it (and soundfile, soxr) are imported on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mediasearch.errors import DecodeError
from mediasearch.media import ffmpeg
from mediasearch.media.decoded import Decoded, Segment, first_line, out_of_memory

SAMPLE_RATE = 48_000
WINDOW_S = 10.0
HOP_S = 8.0  # windows overlap by 2 s, so a sound up to 2 s long is never cut in two
WINDOW = int(SAMPLE_RATE * WINDOW_S)
N_FFT, HOP, N_MELS, F_MIN, F_MAX = 1024, 480, 64, 50.0, 14_000.0
# Sample rates anybody records at lie between telephone (8 kHz; 4 kHz for old formats) and
# studio (768 kHz); outside that a header is lying, and a 1 Hz "recording" of 100 KB would
# stand for a day of sound.
MIN_RATE, MAX_RATE = 4_000, 768_000
MAX_DURATION_S = 12 * 3600.0  # the default cap on what one recording contributes (`--max-duration`)
READ_AHEAD = 16  # windows a decoder thread reads before handing a recording over
# One read holds at most this many bytes of float32 samples: 8 s of stereo at 48 kHz is 3 MB, but 8 s of
# 255 channels at 192 kHz would be 1.5 GB, so wide recordings are read a fraction of a second at a time.
READ_BYTES = 16 * 1024 * 1024


def expected_segments(path: str | Path, kind: str | None) -> int:
    """Roughly how many segments a file of this kind will give, for progress (a header's word is enough)."""
    if kind != "audio":
        return 1
    try:
        import soundfile as sf

        seconds = min(sf.info(str(path)).duration, MAX_DURATION_S)
    except Exception:
        return 1
    return len(windows(seconds)) if seconds > 0 else 1


def windows(duration: float) -> list[tuple[float, float]]:
    """Deterministic 10 s windows over a recording, as (start, end) seconds.

    Up to 10 s: one window, the whole clip (repeat-padded like the reference).
    Longer: windows start every 8 s; the last one is aligned to end exactly at
    the end of the recording, so every window holds 10 s of real sound.
    """
    if duration <= WINDOW_S:
        return [(0.0, duration)]
    spans = []
    start = 0.0
    while start + WINDOW_S < duration:
        spans.append((start, start + WINDOW_S))
        start += HOP_S
    last = (duration - WINDOW_S, duration)
    if spans[-1][0] < last[0]:
        spans.append(last)
    return spans


def decode_audio(path: Path, max_duration: float = MAX_DURATION_S) -> Decoded:
    """Open a recording and read its first windows; the rest follow on demand.

    What a recording is comes from what can be read, never from the frame count
    a header claims (a few hundred bytes of MP3 can claim 2^63 frames): the file
    is read front to back, window by window, and its duration is where reading
    ends.  A damaged tail keeps what came before it, with a note.  libsndfile
    reads what it can (the fast path); FFmpeg reads the rest (M4A, AAC, WMA...).
    """
    snd = _open_sound(path)
    decoded = Decoded("audio", [], {"sample_rate": snd.samplerate, "channels": snd.channels})
    return read_ahead(decoded, read_windows(path, snd, decoded, max_duration))


def samples_between(path: str | Path, start: float, end: float) -> tuple[np.ndarray, int]:
    """Mono float32 samples of [start, end) seconds at the recording's own rate, for drawing the sound.

    libsndfile seeks there; FFmpeg's reader reads up to it.  Wide recordings are read a
    fraction of a second at a time (READ_BYTES), as indexing reads them.
    """
    snd = _open_sound(Path(path))
    try:
        rate = snd.samplerate
        first, count = int(start * rate), max(1, int((end - start) * rate))
        step = max(1, READ_BYTES // (4 * max(1, snd.channels)))
        if getattr(snd, "seekable", lambda: False)():
            if first >= snd.frames:
                return np.zeros(0, np.float32), rate
            snd.seek(first)
        else:
            _read_mono(snd, first, step)
        return _read_mono(snd, count, step), rate
    finally:
        snd.close()


def _read_mono(snd, frames: int, step: int) -> np.ndarray:
    parts, left = [], frames
    while left > 0:
        block = snd.read(min(step, left), dtype="float32", always_2d=True)
        if len(block) == 0:
            break
        parts.append(np.nan_to_num(block.mean(axis=1), nan=0.0, posinf=0.0, neginf=0.0))
        left -= len(block)
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _open_sound(path: Path):
    """A reader with samplerate, channels, read() and close(): libsndfile's, else FFmpeg's."""
    import soundfile as sf

    try:
        snd = sf.SoundFile(str(path))
    except Exception as exc:
        if out_of_memory(exc):
            raise
        try:
            snd = ffmpeg.AvAudio(path)
        except DecodeError as other:
            # libsndfile's "possibly a pipe?" only means its MP3 reader gave up: FFmpeg's word is truer then.
            reason = _sndfile_reason(exc)
            message = other.reason if "pipe" in reason else f"not a readable sound file ({reason})"
            raise DecodeError(path, message) from exc
    return checked_rate(path, snd)


def checked_rate(path: Path, snd):
    """The reader, if its sample rate is one anybody records at (a sound file's or a soundtrack's alike);
    else it is closed and the sound refused."""
    if not MIN_RATE <= snd.samplerate <= MAX_RATE:
        snd.close()
        raise DecodeError(path, f"a sample rate of {snd.samplerate} Hz is not one anybody records at: refused")
    return snd


def read_ahead(decoded: Decoded, stream: Iterator[Segment]) -> Decoded:
    """Read the first READ_AHEAD segments now (in the decoder thread); keep the rest for later."""
    try:
        for _ in range(READ_AHEAD):
            decoded.ready.append(next(stream))
    except StopIteration:
        return decoded
    except BaseException:
        stream.close()
        raise
    decoded.more = stream
    return decoded


def read_windows(path: Path, snd, decoded: Decoded, max_duration: float) -> Iterator[Segment]:
    """(span, log-mel) per window, read sequentially; sets the duration fact and any note at the end.

    A window starting at s is emitted once more than s + 10 s has been read (so
    it is not the last); at the end of the file the last window is aligned to
    end exactly there, as `windows()` plans it.
    """
    rate = snd.samplerate
    win, hop, limit = int(round(WINDOW_S * rate)), int(round(HOP_S * rate)), int(max_duration * rate)
    step = max(1, min(hop, READ_BYTES // (4 * max(1, snd.channels))))  # frames a read: a hop, or less if wide
    buf, offset, total, start, emitted = np.zeros(0, np.float32), 0, 0, 0, 0
    try:
        while total < limit:
            try:
                block = snd.read(min(step, limit - total), dtype="float32", always_2d=True)
            except Exception as exc:
                if out_of_memory(exc):
                    raise  # not damage: the file fails for now, and is tried again
                decoded.note = f"read up to {total / rate:.1f} s: the rest is damaged ({_sndfile_reason(exc)})"
                break
            if len(block) == 0:
                break
            # NaN or infinite samples (damaged float audio) would poison the vector: they are silence.
            mono = np.nan_to_num(block.mean(axis=1), nan=0.0, posinf=0.0, neginf=0.0)
            buf = np.concatenate([buf, mono])
            total += len(block)
            while total > start + win:
                yield _window(buf, offset, start, start + win, rate)
                emitted, start = emitted + 1, start + hop
                # Keep from the last window's start: the final, end-aligned window starts after it.
                buf, offset = buf[start - hop - offset :], start - hop
        else:
            decoded.note = f"only the first {max_duration / 3600:g} h are indexed (the --max-duration cap)"
        if total == 0:
            raise DecodeError(path, "contains no audio samples" + (f" ({decoded.note})" if decoded.note else ""))
        decoded.facts.setdefault("duration", round(total / rate, 3))
        if total <= win:
            yield _window(buf, offset, 0, total, rate)
        elif not emitted or start - hop < total - win:
            yield _window(buf, offset, total - win, total, rate)
    finally:
        snd.close()


def _window(buf: np.ndarray, offset: int, first: int, end: int, rate: int) -> Segment:
    samples = resample(buf[first - offset : end - offset], rate)
    return Segment((round(first / rate, 3), round(end / rate, 3)), audio_features(samples), "audio")


def resample(mono: np.ndarray, rate: int) -> np.ndarray:
    """Mono float32 at 48 kHz (soxr, high quality)."""
    if rate == SAMPLE_RATE:
        return mono.astype(np.float32)
    import soxr

    return soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


def audio_features(samples: np.ndarray) -> np.ndarray:
    """[1, 1001, 64] float32 log-mel of up to 10 s at 48 kHz, per ClapFeatureExtractor.

    librosa gives the same periodic-Hann STFT, Slaney mel filterbank and
    power-to-dB as the reference's feature extractor.
    """
    import librosa

    wave = np.asarray(samples, dtype=np.float64)[:WINDOW]
    if 0 < len(wave) < WINDOW:
        wave = np.tile(wave, WINDOW // len(wave))  # "repeatpad": whole repeats, then zeros
    wave = np.pad(wave, (0, WINDOW - len(wave)))
    spectrum = librosa.stft(wave, n_fft=N_FFT, hop_length=HOP, window="hann", center=True, pad_mode="reflect")
    mel = _mel_bank() @ (np.abs(spectrum) ** 2)
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T.astype(np.float32)[None]


def silent_features() -> np.ndarray:
    return audio_features(np.zeros(WINDOW, np.float32))


_MEL: list[np.ndarray] = []


def _mel_bank() -> np.ndarray:
    """[64, 513] Slaney-scale, Slaney-normalised triangular filters, 50-14,000 Hz (made once)."""
    if not _MEL:
        import librosa

        _MEL.append(
            librosa.filters.mel(
                sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX, htk=False, norm="slaney"
            )
        )
    return _MEL[0]


def _sndfile_reason(exc: Exception) -> str:
    """libsndfile's message without its "Error opening 'PATH': " preamble (the caller names the file)."""
    text = first_line(exc)
    if text.startswith("Error opening") and "': " in text:
        text = text.split("': ", 1)[1]
    return text
