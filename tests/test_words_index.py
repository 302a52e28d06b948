"""Words find files: names, tags, captions and text read in pictures, in the catalog's FTS5 table, ranked
with the vectors. Real OCR weights (PP-OCRv5), the small random-weight bundle (its vectors rank at random,
so only words can put a file first), real SQLite and real files."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mutagen import File as MutagenFile
from PIL import Image, ImageDraw, ImageFont

import mediasearch

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
pytestmark = pytest.mark.slow  # each test indexes a folder and reads its pictures' text (several seconds)


@pytest.fixture(autouse=True)
def read_text(monkeypatch):
    """These tests are about words: reading text in pictures is on, as it is for users."""
    monkeypatch.delenv("MEDIASEARCH_NO_OCR", raising=False)


def card(path: Path, lines: list[str], size: int = 36) -> Path:
    """A small picture holding these lines of text (small, so reading it costs little)."""
    font = ImageFont.truetype(FONT, size)
    width = max(int(font.getlength(line)) for line in lines) + 60
    img = Image.new("RGB", (width, len(lines) * (size + 20) + 40), (248, 248, 245))
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((30, 20 + i * (size + 20)), line, font=font, fill=(10, 10, 10))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def plain(path: Path, seed: int, **save) -> Path:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (3, 4, 3), dtype=np.uint8)).resize((320, 240), Image.BICUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=90, **save)
    return path


def song(path: Path, **tags) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * np.sin(np.arange(22050) / 10)).astype(np.float32), 22050, format="FLAC")
    audio = MutagenFile(path)
    for key, value in tags.items():
        audio[key] = value
    audio.save()
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    media = tmp_path / "media"
    card(media / "scans" / "letter.png", ["Nordwind Energie", "INVOICE No. 2024-0815"])
    card(media / "travel" / "sign.png", ["Café Müller"])
    card(media / "cars" / "plate.png", ["RE16TGK"])
    song(media / "music" / "track01.flac", title="Moonlight Ferry", artist="Ines Caravela")
    exif = Image.Exif()
    exif[0x010E] = "Lighthouse at Hallig Hooge"
    plain(media / "camera" / "DSC_3001.jpg", 1, exif=exif)
    plain(media / "family" / "grandmaBirthday_cake.jpg", 2)
    plain(media / "Reykjavik 2019" / "DSC_0001.jpg", 3)
    for i in range(8):
        plain(media / "photos" / f"DSC_{i:04d}.jpg", 10 + i)
    return media


@pytest.fixture
def library(folder, isolated, embedder):
    with mediasearch.open(isolated / "library", model=embedder, write=True) as lib:
        summary = lib.index(folder)
        assert summary.read == 14, "every picture's text is read in the same pass, after the vectors"
        yield lib


def first(lib, text: str) -> str:
    return Path(lib.search(text, limit=3)[0].path).name


def test_each_kind_of_words_puts_its_file_first(library):
    assert first(library, "invoice 2024-0815") == "letter.png"  # text in a picture, words not adjacent
    assert first(library, "cafe muller") == "sign.png"  # accents folded both ways
    assert first(library, "Café Müller") == "sign.png"
    assert first(library, "RE16") == "plate.png"  # a prefix of a word OCR ran together
    assert first(library, "moonlight ferry") == "track01.flac"  # a FLAC tag
    assert first(library, "ines caravela") == "track01.flac"
    assert first(library, "lighthouse hooge") == "DSC_3001.jpg"  # an EXIF caption
    assert first(library, "grandma birthday") == "grandmaBirthday_cake.jpg"  # a file name split
    assert first(library, "reykjavik") == "DSC_0001.jpg"  # a folder's name


def test_json_says_what_matched_and_where(library):
    hit = library.search("nordwind invoice", limit=1)[0]
    data = hit.as_dict()
    assert data["words"]["matched"] == ["invoice", "nordwind"]
    assert data["words"]["found"][0]["source"] == "text" and "INVOICE" in data["words"]["found"][0]["snippet"]
    assert "words" not in library.search("an animal", limit=1)[0].as_dict()


def test_a_slip_of_one_letter_ranks_below_the_exact_word(library, folder):
    card(folder / "scans" / "other.png", ["Nordwund Energie"])
    library.index()
    names = [Path(h.path).name for h in library.search("nordwind", limit=3)]
    assert names[:2] == ["letter.png", "other.png"]


def test_stop_words_alone_and_unmatched_words_rank_as_the_vectors_do(library, embedder):
    from mediasearch.search import Filters, search
    from mediasearch.storage import Storage

    with Storage(library.folder) as under:
        for text in ["a photo of the", "zebra xylophone"]:
            alone = search(under, embedder.embed_texts([text])[0], 10, Filters())
            assert [h.path for h in library.search(text, limit=10)] == [h.path for h in alone]
            assert all(h.words is None for h in library.search(text, limit=10))


def test_a_negative_word_takes_the_text_match_away(library):
    assert first(library, "energie") == "letter.png"
    assert "letter.png" not in first(library, "energie -nordwind")


def test_a_quoted_phrase_must_match_as_a_phrase(library):
    assert first(library, '"moonlight ferry"') == "track01.flac"
    hits = library.search('"ferry moonlight"', limit=20)
    assert all(h.words is None for h in hits)


def test_moves_copies_and_removals_keep_the_words_exact(library, folder):
    (folder / "archive-2024").mkdir()
    shutil.move(folder / "scans" / "letter.png", folder / "archive-2024" / "letter.png")
    shutil.copy(folder / "travel" / "sign.png", folder / "travel" / "sign-copy.png")
    (folder / "music" / "track01.flac").unlink()
    summary = library.index()
    assert summary.read == 0, "a move and a copy reuse the text read before: nothing is read again"
    assert first(library, "invoice archive") == "letter.png"  # text kept, new folder name found
    hit = library.search("cafe muller", limit=1)[0]
    assert sorted(Path(p).name for p in [hit.path, *hit.copies]) == ["sign-copy.png", "sign.png"]
    assert all(h.words is None for h in library.search("moonlight ferry", limit=20))
    db = sqlite3.connect(library.folder / "catalog.db")
    db.execute("INSERT INTO texts_fts(texts_fts) VALUES ('integrity-check')")  # FTS5 agrees with `texts`
    orphans = db.execute("SELECT count(*) FROM texts WHERE file_id NOT IN (SELECT id FROM files)").fetchone()[0]
    assert orphans == 0


def test_a_library_indexed_without_text_reads_it_next_pass_without_embedding(folder, isolated, embedder):
    with mediasearch.open(isolated / "library", model=embedder, write=True) as lib:
        first_pass = lib.index(folder, ocr=False)
        assert first_pass.read == 0
        assert first(lib, "moonlight ferry") == "track01.flac", "tags and names need no OCR"
        assert all(h.words is None for h in lib.search("nordwind", limit=20))
        db = sqlite3.connect(lib.folder / "catalog.db")
        segments = db.execute("SELECT id FROM segments ORDER BY id").fetchall()
        second = lib.index()
        assert second.read == 14 and second.added == second.updated == 0
        assert db.execute("SELECT id FROM segments ORDER BY id").fetchall() == segments, "no vector made again"
        assert first(lib, "nordwind") == "letter.png"
        assert lib.status()["words"] == {"read": 14, "with_text": 3, "waiting": 0}


def test_new_pictures_are_findable_by_their_vectors_before_their_text_is_read(folder, isolated, embedder):
    """Reading text follows the vector pass: by then the saved index holds the new pictures, so another
    process's query finds them while the text is still being read (not only at the end of the run)."""
    with mediasearch.open(isolated / "library", model=embedder, write=True) as lib:
        lib.index(folder, ocr=False)
        new = plain(folder / "later" / "IMG_0001.jpg", 99)
        seen: list[set[str]] = []

        def reading():
            with mediasearch.open(lib.folder, model=embedder) as reader:  # read-only, while the writer works
                seen.append({hit.path for hit in reader.search(like=[new], limit=30, include_examples=True)})
            return None

        lib.index(folder, reading=reading)
        assert seen and str(new) in seen[0], "the new picture was not findable until its text was read"


def test_tags_and_captions_of_a_library_made_before_words_are_read_without_embedding(folder, isolated, embedder):
    with mediasearch.open(isolated / "library", model=embedder, write=True) as lib:
        lib.index(folder, ocr=False)
        db = sqlite3.connect(lib.folder / "catalog.db", isolation_level=None)
        # What a library of schema 6 holds after migration 7: names only, and no mark that tags were read.
        db.execute("DELETE FROM texts WHERE source IN ('tag', 'caption')")
        db.execute("DELETE FROM meta WHERE key = 'metadata_words_read_after'")
        assert all(h.words is None for h in lib.search("moonlight ferry", limit=20))
        segments = db.execute("SELECT id FROM segments ORDER BY id").fetchall()
        summary = lib.index(ocr=False)
        assert summary.unchanged == 15 and summary.batches == 0
        assert db.execute("SELECT id FROM segments ORDER BY id").fetchall() == segments
        assert first(lib, "moonlight ferry") == "track01.flac"
        assert first(lib, "lighthouse hooge") == "DSC_3001.jpg"
        assert db.execute("SELECT value FROM meta WHERE key = 'metadata_words_read_after'").fetchone() == ("done",)


def test_kill_9_while_reading_text_keeps_words_exact_and_the_next_pass_finishes(folder, isolated):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import BUNDLE

    for i in range(12):
        card(folder / "more" / f"note_{i}.png", [f"Reminder number {i}", "Water the plants"])
    env = dict(os.environ, MEDIASEARCH_HOME=str(isolated / "library"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mediasearch", "index", str(folder), "--model", str(BUNDLE)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    catalog = isolated / "library" / "catalog.db"
    deadline = time.monotonic() + 120
    read = 0
    while proc.poll() is None and time.monotonic() < deadline and not read:
        time.sleep(0.05)
        try:
            db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=1)
            read = db.execute("SELECT count(*) FROM files WHERE ocr IS NOT NULL").fetchone()[0]
            db.close()
        except sqlite3.Error:
            pass  # not created or migrated yet
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert read, "killed while the text was being read"
    db = sqlite3.connect(catalog, isolation_level=None)
    db.execute("INSERT INTO texts_fts(texts_fts) VALUES ('integrity-check')")
    segments = db.execute("SELECT id FROM segments ORDER BY id").fetchall()
    with mediasearch.open(isolated / "library", model=str(BUNDLE), write=True) as lib:
        summary = lib.index()
        assert summary.added == 0 and 0 < summary.read < 26, "only what was not read yet is read"
        assert lib.status()["words"]["waiting"] == 0
        assert first(lib, "reminder 7") == "note_7.png"
    assert db.execute("SELECT id FROM segments ORDER BY id").fetchall() == segments


def title_card_video(path: Path, text: str, seconds: int = 20, fps: int = 2) -> Path:
    """A silent H.264 video: a plain colour for the first half, then a title card holding `text`."""
    card_img = Image.open(card(path.with_suffix(".png"), [text], 40)).convert("RGB").resize((480, 120))
    path.with_suffix(".png").unlink()
    frames = []
    for i in range(seconds * fps):
        frame_img = Image.new("RGB", (640, 360), (40, 90, 160))
        if i >= seconds * fps // 2:
            frame_img.paste(card_img, (80, 120))
        frames.append(frame_img)
    return h264(path, frames, fps)


def h264(path: Path, frames: list[Image.Image], fps: int) -> Path:
    """Write 640x360 pictures as a silent H.264 video, a key frame every second."""
    from fractions import Fraction

    import av

    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
    stream.options = {"g": str(fps), "preset": "ultrafast"}
    for i, picture in enumerate(frames):
        frame = av.VideoFrame.from_image(picture)
        frame.pts, frame.time_base = i, Fraction(1, fps)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def test_a_video_is_found_at_the_moment_its_words_are_on_screen(tmp_path, isolated, embedder):
    media = tmp_path / "clips"
    media.mkdir()
    title_card_video(media / "holiday.mp4", "PLATFORM NINE")
    plain(media / "photo.jpg", 5)
    with mediasearch.open(isolated / "library", model=embedder, write=True) as lib:
        assert lib.index(media).read == 2
        hit = lib.search("platform nine", limit=1)[0]
        assert Path(hit.path).name == "holiday.mp4"
        found = hit.words["found"][0]
        assert found["source"] == "frame" and 10.0 <= found["at"] < 20.0, "a frame where the card shows"
        assert hit.start == hit.end == found["at"] and hit.matched == "image"


def test_a_decoder_crashing_while_reading_text_loses_that_text_only(tmp_path, isolated, embedder):
    """Pictures are decoded for reading in decoder workers, as for their vectors: a crash there is one note
    with its reason, the picture keeps its vectors and counts as read, every other picture is read."""
    from conftest import open_library
    from decoder_hooks import reading_crashes

    from mediasearch.ingest import Indexer
    from mediasearch.ocr import Reader

    media = tmp_path / "media"
    card(media / "crashes-when-read.png", ["Harbour Ferry"])
    card(media / "letter.png", ["Nordwind Energie"])
    storage = open_library(isolated / "library", embedder.bundle)
    notes: list[str] = []
    indexer = Indexer(
        storage, lambda: embedder, warn=notes.append, decoder_setup=reading_crashes, reader_factory=Reader
    )
    assert indexer.scan(storage.add_folders([str(media)])).added == 2
    assert indexer.read_text() == 2 and not indexer.summary.stopped
    storage.save_index()
    storage.close()
    crashed = media / "crashes-when-read.png"
    assert notes == [f"note: {crashed}: its text could not be read (the decoder crashed (signal 11, SIGSEGV))"]
    with mediasearch.open(isolated / "library", model=embedder) as lib:
        assert first(lib, "nordwind energie") == "letter.png"
        assert lib.status()["words"] == {"read": 2, "with_text": 1, "waiting": 0}
        assert any(hit.path == str(crashed) for hit in lib.search(like=[crashed], limit=5, include_examples=True))


def reading_pass(storage, embedder, notes: list[str], setup=None):
    """An Indexer that reads text (decoder workers set up by `setup`), as `index` makes it."""
    from mediasearch.ingest import Indexer
    from mediasearch.ocr import Reader

    return Indexer(storage, lambda: embedder, warn=notes.append, decoder_setup=setup, reader_factory=Reader)


def test_text_not_read_for_want_of_memory_is_read_on_the_next_pass(tmp_path, isolated, embedder):
    """A picture or video whose decoding for reading finds too little memory is not marked read: the note
    says it is tried again on the next pass, as the vector pass does, and the next pass reads it."""
    from conftest import open_library
    from decoder_hooks import reading_runs_out_of_memory

    from mediasearch import ocr

    media = tmp_path / "media"
    card(media / "nomemory-when-read.png", ["Harbour Ferry"])
    title_card_video(media / "nomemory-when-read-clip.mp4", "PLATFORM NINE", seconds=4)
    card(media / "letter.png", ["Nordwind Energie"])
    storage = open_library(isolated / "library", embedder.bundle)
    notes: list[str] = []
    indexer = reading_pass(storage, embedder, notes, reading_runs_out_of_memory)
    assert indexer.scan(storage.add_folders([str(media)])).added == 3
    assert indexer.read_text() == 1 and not indexer.summary.stopped
    assert len(notes) == 2 and all(note.endswith("it is tried again on the next pass)") for note in notes), notes
    waiting = sorted(Path(path).name for _, path, _ in storage.catalog.unread(ocr.fingerprint(), 10))
    assert waiting == ["nomemory-when-read-clip.mp4", "nomemory-when-read.png"], "marked read, never read"
    assert reading_pass(storage, embedder, notes).read_text() == 2 and len(notes) == 2
    storage.save_index()
    storage.close()
    with mediasearch.open(isolated / "library", model=embedder) as lib:
        assert first(lib, "harbour ferry") == "nomemory-when-read.png"
        assert first(lib, "platform nine") == "nomemory-when-read-clip.mp4"


def test_where_no_decoder_worker_starts_a_failing_video_loses_its_text_only(tmp_path, isolated, embedder, monkeypatch):
    """Decoding in this process (no worker could start), a video whose frames fail to decode while its text
    is read is one note, as in a worker: the pass goes on and reads the other pictures."""
    from conftest import open_library
    from decoder_hooks import reading_runs_out_of_memory

    from mediasearch import ocr
    from mediasearch.media import workers

    media = tmp_path / "media"
    title_card_video(media / "nomemory-when-read-clip.mp4", "PLATFORM NINE", seconds=4)
    card(media / "letter.png", ["Nordwind Energie"])
    storage = open_library(isolated / "library", embedder.bundle)
    notes: list[str] = []
    indexer = reading_pass(storage, embedder, notes)
    assert indexer.scan(storage.add_folders([str(media)])).added == 2

    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied", "/venv/bin/python")

    monkeypatch.setattr(workers, "_Worker", refuse)
    monkeypatch.setattr(ocr, "load", ocr.load)  # put back after the test
    monkeypatch.setattr(ocr, "video_frames", ocr.video_frames)
    reading_runs_out_of_memory()
    assert indexer.read_text() == 1 and not indexer.summary.stopped
    clip = media / "nomemory-when-read-clip.mp4"
    assert notes[0] == "decoder workers cannot start here (Permission denied): decoding in this process"
    assert notes[1].startswith(f"note: {clip}: the text of its frames could not be read (not enough memory")
    assert [Path(path).name for _, path, _ in storage.catalog.unread(ocr.fingerprint(), 10)] == [clip.name]
    storage.close()


def test_the_files_holding_every_word_are_first_when_a_word_matches_thousands(tmp_path, isolated, embedder):
    """Files found by their words beyond the vector candidates get their vector scores 1,000 at most: the
    best text matches are those kept.  Cut in the order the full-text index returned them, the files
    holding both words of "beach nordwind", named last in a folder of 1,100 beach photos, were cut off
    (all but those among the vectors' 50 candidates) and not found at all."""
    media = tmp_path / "media" / "beach"
    media.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"DSC_{i:04d}.png" for i in range(1100)] + [f"zz_nordwind_{i}.png" for i in range(5)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)).save(media / name)
    with mediasearch.open(isolated / "library", model=embedder, write=True) as lib:
        assert lib.index(media.parent, ocr=False).added == 1105
        hits = lib.search("beach nordwind", limit=5)
        assert sorted(Path(h.path).name for h in hits) == names[-5:]
        assert all(h.words["matched"] == ["beach", "nordwind"] for h in hits)


def test_the_watcher_reads_waiting_text_between_its_syncs(tmp_path, isolated, embedder):
    """The watcher reads the text still waiting (a library indexed with --no-ocr) a slice at a time between
    its syncs, from its start: it read none until a file event, then every waiting picture's text before
    it looked at the next event, so a new file's vectors waited for a library's worth of reading."""
    import threading
    import time

    media = tmp_path / "media"
    for i in range(40):
        card(media / "notes" / f"note_{i}.png", [f"Reminder number {i}", "Water the plants"])
    catalog = isolated / "library" / "catalog.db"

    def read() -> tuple[int, int]:
        db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT count(ocr), count(*) FROM files WHERE kind = 'image'").fetchone()
        finally:
            db.close()

    def wait_for(check, what: str) -> None:
        deadline = time.monotonic() + 60
        while not check():
            assert thread.is_alive() and time.monotonic() < deadline, f"timed out waiting for {what}: {lines}"
            time.sleep(0.05)

    with mediasearch.open(isolated / "library", model=embedder, write=True) as lib:
        lib.index(media, ocr=False)
        changes, lines = [], []
        options = {"settle": 0.2, "on_change": changes.append, "log": lines.append}
        thread = threading.Thread(target=lib.watch, kwargs=options)
        thread.start()
        try:
            wait_for(lambda: read()[0] > 0, "the waiting text read without a file event")
            new = plain(media / "new.jpg", 7)
            wait_for(lambda: any(c.action == "added" and c.path == str(new) for c in changes), "the new file")
            done, pictures = read()
            assert done < pictures - 1, "the new file's vectors waited for the library's text"
            wait_for(lambda: read()[0] == 41, "every picture's text")
        finally:
            lib.stop()
            thread.join(timeout=30)
        assert not thread.is_alive()
        assert first(lib, "reminder 17") == "note_17.png"


def test_reading_holds_one_picture_ahead_not_a_batch(tmp_path, isolated, embedder):
    """Pictures are decoded for reading one ahead of the one being read: the whole batch (READ_BATCH, 8) was
    decoded ahead and held till the batch ended, 9 MB each at 2048 px, outside the decoders' memory budget.
    Measured in this process with tracemalloc (numpy's arrays are traced; onnxruntime's own are not)."""
    import tracemalloc

    from conftest import open_library

    from mediasearch.ingest.constants import READ_BATCH

    media = tmp_path / "media"
    media.mkdir()
    font = ImageFont.truetype(FONT, 64)
    for i in range(READ_BATCH):
        img = Image.new("RGB", (2048, 1536), (250, 250, 246))
        ImageDraw.Draw(img).text((200, 300), f"Page {i} of the harbour log", font=font, fill=(10, 10, 10))
        img.save(media / f"page_{i}.png")
    storage = open_library(isolated / "library", embedder.bundle)
    notes: list[str] = []
    indexer = reading_pass(storage, embedder, notes)
    assert indexer.scan(storage.add_folders([str(media)])).added == READ_BATCH
    indexer._reader = indexer._reader_factory()
    indexer._reader.read(np.zeros((64, 64, 3), np.uint8))  # the sessions loaded before measuring
    tracemalloc.start()
    try:
        assert indexer.read_text() == READ_BATCH and not notes
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        storage.close()
    picture = 2048 * 1536 * 3
    assert peak < 10 * picture, f"{peak / picture:.1f} pictures' worth held at once"  # 12.6 before, 7.6 after


def test_copies_are_found_by_the_copy_whose_words_match_best(tmp_path, isolated, embedder):
    """Copies of one content are one hit: its text match is its best-matching copy's, not whichever copy the
    full-text index returned last ("ferry" showed the copy named ferryboat, a prefix, over the one named
    ferry, the word itself)."""
    media = tmp_path / "media"
    plain(media / "ferry.jpg", 4)
    shutil.copy(media / "ferry.jpg", media / "ferryboat.jpg")
    plain(media / "other.jpg", 5)
    with mediasearch.open(isolated / "library", model=embedder, write=True) as lib:
        lib.index(media, ocr=False)
        hit = lib.search("ferry", limit=1)[0]
        assert sorted(Path(p).name for p in [hit.path, *hit.copies]) == ["ferry.jpg", "ferryboat.jpg"]
        assert [found["snippet"] for found in hit.words["found"]] == ["ferry"]


def two_scene_video(path: Path, first_text: str, second_text: str, seconds: int = 8, fps: int = 2) -> Path:
    """A silent H.264 video: a card holding `first_text` on blue, then one holding `second_text` on red."""
    cards = []
    for i, text in enumerate((first_text, second_text)):
        cards.append(Image.open(card(path.with_name(f"card{i}.png"), [text], 40)).convert("RGB").resize((480, 120)))
        path.with_name(f"card{i}.png").unlink()
    frames = []
    for i in range(seconds * fps):
        second = i >= seconds * fps // 2
        frame_img = Image.new("RGB", (640, 360), (170, 40, 40) if second else (40, 90, 160))
        frame_img.paste(cards[second], (80, 120))
        frames.append(frame_img)
    return h264(path, frames, fps)


def test_a_video_whose_decoder_crashes_midway_keeps_the_text_read_and_says_from_when_it_is_lost(
    tmp_path, isolated, embedder
):
    """A decoder that crashes after some of a video's frames were read: those frames' words are kept and the
    video counts as read; the note says from which time on its text is lost ("could not be read" alone said
    that none of it was)."""
    from conftest import open_library
    from decoder_hooks import reading_crashes_midway

    media = tmp_path / "media"
    media.mkdir()
    clip = two_scene_video(media / "crashes-midway.mp4", "PLATFORM NINE", "GATE TWELVE")
    storage = open_library(isolated / "library", embedder.bundle)
    notes: list[str] = []
    indexer = reading_pass(storage, embedder, notes, reading_crashes_midway)
    assert indexer.scan(storage.add_folders([str(media)])).added == 1
    times = storage.catalog.frame_times(storage.catalog.unread(ocr_fingerprint(), 1)[0][0])
    assert len(times) >= 2, "both scenes embedded"
    assert indexer.read_text() == 1
    assert notes == [
        f"note: {clip}: the text of its frames after {min(times):g} s could not be read "
        "(the decoder crashed (signal 11, SIGSEGV))"
    ]
    assert storage.catalog.unread(ocr_fingerprint(), 10) == [], "counted as read"
    storage.save_index()
    storage.close()
    with mediasearch.open(isolated / "library", model=embedder) as lib:
        assert first(lib, "platform nine") == clip.name


def ocr_fingerprint() -> str:
    from mediasearch import ocr

    return ocr.fingerprint()
