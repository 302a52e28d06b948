"""The search page in a real headless Chromium (Debian's), driven by Selenium, against a real server."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import INPUTS
from test_server import Server, cli_json, library  # noqa: F401 - the module's fixture, shared

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,  # a browser and a server process
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None, reason="Debian's chromium and chromium-driver are not installed"
    ),
]
SHOTS = Path(__file__).parent / "screenshots"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,900", "--autoplay-policy=no-user-gesture-required"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(library):  # noqa: F811
    lib, _, env = library
    served = Server(lib, env={"MEDIASEARCH_CACHE": env["MEDIASEARCH_CACHE"]})
    yield served
    served.stop()


def wait(check, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def cards(browser):
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, "#results .card")


def names(browser) -> list[str]:
    """The result names, read in one go (the grid may be re-rendering meanwhile)."""
    return browser.execute_script(
        "return [...document.querySelectorAll('#results .card .name')].map(e => e.textContent)"
    )


def test_type_a_query_and_see_thumbnails(browser, page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(page.url + "/")
    box = browser.find_element(By.ID, "q")
    box.send_keys("a cat", Keys.ENTER)  # Enter searches
    wait(lambda: len(cards(browser)) > 5, "results")
    assert parse_qs(urlparse(browser.current_url).query)["q"] == ["a cat"], "the search lives in the URL"

    def loaded():
        return [
            img
            for img in browser.find_elements(By.CSS_SELECTOR, "#results img")
            if browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
        ]

    wait(lambda: len(loaded()) >= 5, "five thumbnails to load")  # not the first one alone: they load in turn
    assert len(loaded()) >= 5
    SHOTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(SHOTS / "results.png"))


def test_a_sound_plays_from_its_best_moment(browser, page):
    from selenium.webdriver.common.by import By

    browser.get(page.url + "/?q=speech+then+noise&type=audio")
    wait(lambda: names(browser), "sound results")
    players = browser.find_elements(By.CSS_SELECTOR, "#results audio")
    hits = page.get("/api/search", params={"q": "speech then noise", "type": "audio"}).json()
    assert len(players) == len(hits)
    late = next((i for i, h in enumerate(hits) if h["start"]), None)
    assert late is not None, "one hit should be in a later window of a long recording"
    player = players[late]
    browser.execute_script("arguments[0].muted = true; return arguments[0].play()", player)
    wait(lambda: browser.execute_script("return arguments[0].currentTime", player) > 0, "playback")
    start = browser.execute_script("return arguments[0].currentTime", player)
    assert start >= hits[late]["start"] - 0.05, (start, hits[late]["start"])


def test_search_by_uploading_an_example_ranks_like_query_like(browser, page, library):  # noqa: F811
    from selenium.webdriver.common.by import By

    _, _, env = library
    browser.get(page.url + "/")
    browser.find_element(By.ID, "example").send_keys(str(INPUTS / "landscape.jpg"))
    wait(lambda: "like landscape.jpg" in browser.find_element(By.ID, "message").text, "the example search")
    want = cli_json(env, "query", "--like", str(INPUTS / "landscape.jpg"), "--json", "-n", "24")
    assert names(browser) == [Path(h["path"]).name for h in want]


def test_back_restores_the_previous_search_and_more_like_this_opens(browser, page):
    from selenium.webdriver.common.by import By

    browser.get(page.url + "/?q=rain")
    first = wait(lambda: names(browser), "the first search")
    browser.find_element(By.ID, "q").clear()
    browser.find_element(By.ID, "q").send_keys("a rocket launch\n")
    wait(lambda: browser.find_element(By.ID, "q").get_attribute("value") == "a rocket launch" and names(browser)
         and "rocket" in browser.current_url, "the second search")  # fmt: skip
    browser.back()
    wait(lambda: names(browser) == first and browser.find_element(By.ID, "q").get_attribute("value") == "rain",
         "the first search again")  # fmt: skip
    browser.execute_script("document.querySelector('#results .card .name').click()")
    wait(lambda: browser.find_element(By.ID, "detail").get_attribute("open") is not None, "the detail view")
    browser.find_element(By.ID, "more").click()
    wait(lambda: "similar=" in browser.current_url and names(browser), "more like this")
    assert names(browser)[0] == first[0] and first[0] not in names(browser)[1:], "the item itself is only the example"


def test_the_status_view(browser, page):
    from selenium.webdriver.common.by import By

    browser.get(page.url + "/?view=status")
    text = wait(lambda: browser.find_element(By.ID, "status").text, "the status view")
    assert "16 files" in text and "online" in text
    assert json.loads(json.dumps(text))  # plain text, no markup leaked


def test_a_card_and_its_detail_show_which_words_matched_and_where(browser, page):
    from selenium.webdriver.common.by import By

    browser.get(page.url + "/?q=" + "chelsea cat")
    first = wait(lambda: cards(browser), "results")[0]
    assert first.find_element(By.CSS_SELECTOR, ".name").text.startswith("cat-chelsea.")
    line = first.find_element(By.CSS_SELECTOR, ".words")
    assert line.text == "name: cat chelsea"
    assert [m.text for m in line.find_elements(By.CSS_SELECTOR, "mark")] == ["cat", "chelsea"]
    first.find_element(By.CSS_SELECTOR, ".open").click()
    shown = wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#detail-body .words mark"), "the detail's words")
    assert [m.text for m in shown] == ["cat", "chelsea"]
    browser.execute_script("document.getElementById('detail').close()")
    browser.get(page.url + "/?q=" + "outer space")  # words that match nothing: no line
    wait(lambda: cards(browser), "results")
    assert not browser.find_elements(By.CSS_SELECTOR, "#results .words")


@pytest.fixture(scope="module")
def travels(tmp_path_factory):
    """A served library of photos whose EXIF says when and where they were taken (copied today)."""
    import os
    import subprocess
    import sys

    from conftest import BUNDLE
    from test_when_where import LISBON, PORTO, phone_photo

    home = tmp_path_factory.mktemp("travels")
    roll = home / "roll"
    roll.mkdir()
    phone_photo(roll / "lisbon.jpg", "2019:07:15 10:30:00", LISBON)
    phone_photo(roll / "porto.jpg", "2018:05:12 09:00:00", PORTO, INPUTS / "portrait.png")
    env = {"MEDIASEARCH_CACHE": str(home / "cache")}
    indexing = [sys.executable, "-m", "mediasearch", "index", str(roll), "--model", str(BUNDLE)]
    done = subprocess.run(
        indexing, env={**os.environ, "MEDIASEARCH_HOME": str(home / "lib"), **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    served = Server(home / "lib", env=env)
    yield served
    served.stop()


def test_cards_and_the_detail_show_when_and_where_and_near_filters(browser, travels):
    """The place is a name (no map tile from elsewhere); the near field is part of the search in the URL."""
    from selenium.webdriver.common.by import By

    browser.get(travels.url + "/?q=a+photo")
    wait(lambda: len(cards(browser)) == 2, "both photos")
    taken = {card.find_element(By.CSS_SELECTOR, ".name").text: card.find_element(By.CSS_SELECTOR, ".taken").text
             for card in cards(browser)}  # fmt: skip
    assert taken == {"lisbon.jpg": "2019-07-15 · Lisbon, Portugal", "porto.jpg": "2018-05-12 · Porto, Portugal"}
    near = browser.find_element(By.ID, "near")
    near.send_keys("Porto, Portugal")
    browser.find_element(By.CSS_SELECTOR, "#search button[type=submit]").click()
    wait(lambda: names(browser) == ["porto.jpg"], "the Porto photo alone")
    assert parse_qs(urlparse(browser.current_url).query)["near"] == ["Porto, Portugal"]
    cards(browser)[0].find_element(By.CSS_SELECTOR, ".open").click()
    detail = wait(lambda: browser.find_element(By.CSS_SELECTOR, "#detail-body .taken").text, "the detail")
    from datetime import datetime, timedelta, timezone

    local = datetime(2018, 5, 12, 9, tzinfo=timezone(timedelta(hours=1))).astimezone()  # 09:00+01:00, shown here
    assert detail == f"taken {local:%Y-%m-%d %H:%M} (exif) · Porto, Portugal"
    sources = browser.execute_script("return [...document.querySelectorAll('img')].map(i => i.src)")
    assert all(src.startswith(travels.url) for src in sources), "nothing is fetched from elsewhere"
