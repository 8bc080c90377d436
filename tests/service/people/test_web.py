"""The page's Video view in real headless Chromium against a real server, with a real clip:
drop the hall video, see both people (thumbnail, silhouettes, answer), enroll each with one
click, and see them named when the video is sent again. No console errors; axe-core finds
nothing serious or critical. Skipped where Chromium or the real videos are absent."""

from __future__ import annotations

import pytest

from tests.service.live_server import ADMIN_KEY, KEYS, Server
from tests.service.people.conftest import video_extra_missing
from tests.service.test_web import (
    CHROMIUM,
    FLAGS,
    image_loaded,
    playwright,
    serious_accessibility_findings,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if reason := video_extra_missing():
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("web-video")
    env = {**KEYS, "GAITLAB_MAX_UPLOAD_BYTES": "8000000"}
    running = Server(None, folder / "data", env=env).start()
    yield running
    running.stop()


@pytest.fixture
def page(server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
        page.problems = []
        page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def send(page, hall_cut):
    page.set_input_files("#video-file", str(hall_cut))
    page.click("#video-form button[type=submit]")


def test_drop_a_video_see_the_people_enroll_one_click(server, page, hall_cut, tmp_path):
    page.goto(f"{server.url}/#video")
    send(page, hall_cut)
    page.locator("#key-dialog").wait_for(state="visible")
    page.fill("#key-input", ADMIN_KEY)
    page.click("#key-form button[value=save]")
    page.problems.clear()  # the 401 that asked for the key
    send(page, hall_cut)
    wait_until(page, "document.querySelectorAll('#video-result .person').length === 2", 90)
    for track in ("1", "2"):
        card = f"#video-result .person[data-track='{track}']"
        assert image_loaded(page, f"{card} img.thumbnail")
        assert image_loaded(page, f"{card} img.strip")
        assert "Unknown" in page.text_content(f"{card} .decision")
    assert "2 people found" in page.text_content("#video-result .status")
    findings = serious_accessibility_findings(page)
    assert findings == [], "\n".join(findings)
    page.screenshot(path=tmp_path / "web-video.png", full_page=True)

    for track, subject in (("1", "C"), ("2", "B")):
        card = f"#video-result .person[data-track='{track}']"
        page.fill(f"{card} input[name=subject_id]", subject)
        page.click(f"{card} .video-enroll button")
        wait_until(
            page,
            f'document.querySelector("{card} .video-enroll .status")'
            ".textContent.startsWith('Enrolled person')",
            90,
        )
        assert f"as {subject}" in page.text_content(f"{card} .video-enroll .status")

    send(page, hall_cut)  # again: now they have names
    wait_until(page, "document.querySelectorAll('#video-result .decision.known').length === 2", 90)
    names = page.locator("#video-result .decision.known strong").all_text_contents()
    assert names == ["C", "B"]
    assert page.problems == []
