"""The page as a careful user meets it (issue 22): more than 24 results, "like that one" showing its example,
folder names that wrap between names, sound cards that draw the sound, one query language for every face.
Real headless Chromium against a real `mediasearch serve`."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import BUNDLE
from test_page import CHROMEDRIVER, CHROMIUM, browser, cards, names, page, wait  # noqa: F401 - shared fixtures
from test_server import Server, cli_json, library  # noqa: F401 - the module's fixture, shared

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason="Debian's chromium is not installed"),
]
DEEP = ("Holiday photographs", "Summer in Lisbon with the grandparents")


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """A library of 30 different pictures, in folders with long names of several words."""
    from PIL import Image

    home = tmp_path_factory.mktemp("many")
    folder = home.joinpath(*DEEP)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(30):
        base = rng.integers(0, 255, (1, 1, 3)) + np.linspace(0, 60, 64)[:, None, None]
        pixels = np.clip(base + rng.normal(0, 20, (64, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"picture-{i:02}.png")
    env = dict(os.environ, MEDIASEARCH_HOME=str(home / "lib"), MEDIASEARCH_CACHE=str(home / "cache"))
    run = [sys.executable, "-m", "mediasearch", "index", str(home), "--model", str(BUNDLE)]
    done = subprocess.run(run, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    served = Server(home / "lib", env={"MEDIASEARCH_CACHE": env["MEDIASEARCH_CACHE"], "HOME": str(home)})
    yield served
    served.stop()


def test_more_than_24_results_can_be_seen(browser, many):  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.get(many.url + "/?q=a+picture")
    wait(lambda: len(cards(browser)) == 24, "the first 24 results")
    first = names(browser)
    assert first == [h["name"] for h in many.get("/api/search", params={"q": "a picture", "limit": 24}).json()]
    button = browser.find_element(By.ID, "more-results")
    assert button.is_displayed() and button.text == "Show more"
    button.click()
    wait(lambda: len(cards(browser)) == 30, "all 30 results")
    assert names(browser)[:24] == first, "the first page stays as it was, the rest follow"
    assert names(browser) == [h["name"] for h in many.get("/api/search", params={"q": "a picture", "limit": 48}).json()]
    assert not browser.find_element(By.ID, "more-results").is_displayed(), "30 < 48: nothing more to show"
    assert "limit=48" in browser.current_url, "a reload shows as many"


def test_more_results_like_an_uploaded_example(browser, many, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    example = tmp_path / "mine.png"
    one = many.get("/api/search", params={"q": "a picture"}).json()[0]
    example.write_bytes(many.get(one["file"]).content)  # one of the 30, sent from elsewhere
    browser.get(many.url + "/")
    browser.find_element(By.ID, "example").send_keys(str(example))
    wait(lambda: len(cards(browser)) == 24 and "like mine.png" in browser.find_element(By.ID, "message").text,
         "24 results like the example")  # fmt: skip
    browser.find_element(By.ID, "more-results").click()
    wait(lambda: len(cards(browser)) == 29, "the other 29 (the example itself is left out)")
    sent = {"file": ("mine.png", example.read_bytes(), "image/png")}
    assert names(browser) == [h["name"] for h in many.post("/api/search", files=sent, data={"limit": "48"}).json()]


# Where the lines of an element end: the last character drawn on a line, anything not drawn (a space), and the
# first of the next. A line may end after a slash, a hyphen, a "·" or at a space: never inside a name.
LINE_ENDS = """
let text = "";
const drawn = [];  // [index in text, top] of every character drawn (a space ending a line is not)
const walker = document.createTreeWalker(arguments[0], NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  for (let i = 0; i < node.data.length; i++) {
    const range = document.createRange();
    range.setStart(node, i);
    range.setEnd(node, i + 1);
    const rect = range.getClientRects()[0];
    if (rect && rect.width > 0) drawn.push([text.length, rect.top]);
    text += node.data[i];
  }
}
const ends = [];
for (let i = 1; i < drawn.length; i++) {
  if (drawn[i][1] > drawn[i - 1][1] + 2) ends.push(text.slice(drawn[i - 1][0], drawn[i][0] + 1));
}
return ends;
"""


def test_folder_names_do_not_break_mid_word(browser, many):  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.get(many.url + "/?q=a+picture")
    wait(lambda: len(cards(browser)) == 24, "results")
    for meta in browser.find_elements(By.CSS_SELECTOR, "#results .card .meta")[:6]:
        assert f"~/{DEEP[0]}/{DEEP[1]}" in meta.text.replace("\n", " "), "the home folder shown as ~, as the CLI does"
        ends = browser.execute_script(LINE_ENDS, meta)
        assert len(ends) >= 2, "the folder is long enough to take several lines"
        inside = [end for end in ends if end[0] not in "/-·" and " " not in end]
        assert not inside, f"lines break inside a name: {ends}"


def test_like_that_one_shows_the_example_first(browser, page, library):  # noqa: F811
    from selenium.webdriver.common.by import By

    _, folder, env = library
    for name in ("cat-chelsea.jpg", "long-recording.flac"):
        item = next(h for h in page.get("/api/search", params={"q": "x", "limit": 50}).json() if h["name"] == name)
        browser.get(page.url + f"/?similar={item['id']}")
        wait(lambda: len(names(browser)) > 1 and "like that one" in browser.find_element(By.ID, "message").text,
             "more like that one")  # fmt: skip
        shown = names(browser)
        top = cards(browser)[0]
        assert shown[0] == name and "example" in top.get_attribute("class").split()
        assert top.find_element(By.CSS_SELECTOR, ".badge").text == "the example"
        want = cli_json(env, "query", "--like", str(folder / name), "--json", "-n", "24")
        assert shown[1:] == [os.path.basename(h["path"]) for h in want], "then what the CLI finds like it"
        message = browser.find_element(By.ID, "message").text
        assert message.startswith(f"{len(want)} results"), "the example is not counted as a result"


@pytest.mark.parametrize("typed", ["dog -barking", '"rain on a roof" -thunder -"a car"'])
def test_one_query_language_for_the_page_the_api_and_the_cli(browser, page, library, typed):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _, _, env = library
    cli = cli_json(env, "query", "--json", "-n", "24", "--", *typed.split())  # the words as typed, quotes kept
    if typed.startswith("dog"):  # -word pushes away, as --not does: not the text "dog -barking"
        assert cli == cli_json(env, "query", "dog", "--not", "barking", "--json", "-n", "24")
    api = page.get("/api/search", params={"q": typed, "limit": 24}).json()
    browser.get(page.url + "/")
    browser.find_element(By.ID, "q").send_keys(typed, Keys.ENTER)
    wait(lambda: "q=" in browser.current_url and names(browser), "the page's results")
    assert [(h["path"], h["score"]) for h in api] == [(h["path"], h["score"]) for h in cli]
    assert names(browser) == [h["name"] for h in api]


def test_sound_cards_draw_the_sound_and_videos_keep_their_frame(browser, page):  # noqa: F811
    browser.get(page.url + "/?q=speech+then+noise&type=audio")
    wait(lambda: names(browser), "sound results")
    hits = page.get("/api/search", params={"q": "speech then noise", "type": "audio"}).json()
    drawn = wait(
        lambda: browser.execute_script(
            "const w = [...document.querySelectorAll('#results .card img.wave')];"
            "return w.every(i => i.complete && i.naturalWidth === 320) && w.map(i => i.getAttribute('src'))"
        ),
        "every sound card's picture",
    )
    assert drawn == [h["thumb"] for h in hits] and len(drawn) == len(cards(browser)) >= 3
    assert all("start=" in url for url in drawn), "each picture is of the hit's own window"
    video = page.get("/api/search", params={"q": "street", "type": "video"}).json()[0]
    frame = page.get(video["thumb"])
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    """A 25 s recording, silent for 12 s and then loud noise, and a 3 s tone, indexed and served."""
    import soundfile as sf

    home = tmp_path_factory.mktemp("sounds")
    folder = home / "recordings"
    folder.mkdir()
    rate, rng = 48_000, np.random.default_rng(3)
    halves = np.concatenate([np.zeros(12 * rate), rng.uniform(-0.5, 0.5, 13 * rate)])
    sf.write(folder / "quiet-then-loud.wav", halves.astype(np.float32), rate)
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(3 * rate) / rate)
    sf.write(folder / "tone.flac", tone.astype(np.float32), rate)
    env = dict(os.environ, MEDIASEARCH_HOME=str(home / "lib"), MEDIASEARCH_CACHE=str(home / "cache"))
    run = [sys.executable, "-m", "mediasearch", "index", str(folder), "--model", str(BUNDLE)]
    done = subprocess.run(run, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    served = Server(home / "lib", env={"MEDIASEARCH_CACHE": env["MEDIASEARCH_CACHE"]})
    yield served, home / "cache" / "thumbs"
    served.stop()


def ink(png: bytes) -> np.ndarray:
    """Per pixel column, how many pixels are drawn (not the background)."""
    from io import BytesIO

    from PIL import Image

    pixels = np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int)
    return (np.abs(pixels - np.array([238, 242, 251])).sum(axis=2) > 0).sum(axis=0)


def test_a_sound_picture_draws_the_window_and_is_cached_privately(sounds):
    served, thumbs = sounds
    hits = served.get("/api/search", params={"q": "noise", "type": "audio"}).json()
    loud = next(h for h in hits if h["name"] == "quiet-then-loud.wav")
    assert loud["thumb"] == f"/api/thumbs/{loud['id']}?start={loud['start']:g}&end={loud['end']:g}"
    pictures = {}
    for start, end in ((0, 10), (8, 18), (15, 25)):
        answer = served.get(f"/api/thumbs/{loud['id']}", params={"start": start, "end": end})
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        pictures[start] = ink(answer.content)
    assert pictures[0].size == 320 and pictures[0].max() <= 2, "silence is a flat line"
    assert pictures[8][:120].max() <= 2 and pictures[8][140:].min() >= 40, "4 s of silence, then the noise"
    assert pictures[15].min() >= 40, "noise all along"
    tone = next(h for h in hits if h["name"] == "tone.flac")
    steady = ink(served.get(tone["thumb"]).content)
    assert steady.min() >= 40 and steady.max() - steady.min() <= 4, "a steady tone is a steady band"
    made = sorted(thumbs.glob("*.png"))
    assert len(made) == 4 and (thumbs.stat().st_mode & 0o777) == 0o700
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in made)
    stamps = [p.stat().st_mtime_ns for p in made]
    served.get(f"/api/thumbs/{loud['id']}", params={"start": 8, "end": 18})
    assert [p.stat().st_mtime_ns for p in sorted(thumbs.glob("*.png"))] == stamps, "made once, then served"


@pytest.mark.parametrize(
    "window",
    [
        {"start": "nan"},
        {"start": "-1"},
        {"start": "abc"},
        {"end": "999"},
        {"start": "5", "end": "2"},
        {"start": "inf", "end": "inf"},
        {"start": "0", "end": "1e308"},
        {"start": "20", "end": "25"},  # the tone is 3 s long
    ],  # fmt: skip
)
def test_a_sound_picture_of_a_window_outside_the_recording_is_refused(sounds, window):
    served, _ = sounds
    hits = served.get("/api/search", params={"q": "tone", "type": "audio"}).json()
    hit = next(h for h in hits if h["name"] == "tone.flac")
    answer = served.get(f"/api/thumbs/{hit['id']}", params=window)
    assert answer.status_code == 400 and set(answer.json()) == {"error", "message"}
