"""The web page in real headless Chromium (Debian's package, driven by Playwright) against a real
server with API keys: the key prompt, enrolling two subjects, identifying a probe (the right
subject on top, with its GEI), verifying, deleting a subject; no console errors; axe-core finds
nothing serious or critical on any view; usable by keyboard and at a phone's width.

Screenshots of each view go to a temporary folder, or to docs/images/ with
GAITLAB_WRITE_SCREENSHOTS=1 (how the README's were taken). Skipped where Chromium is absent
(``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.helpers import toys_with_a_bad_int8, with_identification
from tests.service.live_server import ADMIN_KEY, CLIENT_KEY, KEYS, REPO, Server
from tests.service.test_recognition import walker_clip

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api")
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Asked to serve an int8 variant that disagrees with its fp32 reference here (as saturating
    kernels did on CPUs without VNNI): it serves the fp32 toy, and the page says why."""
    folder = tmp_path_factory.mktemp("web")
    fp32, int8 = toys_with_a_bad_int8(folder)
    with_identification(fp32)
    running = Server(int8, folder / "data", env=KEYS).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("GAITLAB_WRITE_SCREENSHOTS") == "1":
        return REPO / "docs" / "images"
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def page(server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.problems = []
        page.on(
            "console",
            lambda m: (
                page.problems.append(f"{m.text} ({m.location.get('url')})")
                if m.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        page.set_default_timeout(20_000)
        yield page
        browser.close()


def clip_file(name: str, data: bytes) -> dict:
    return {"name": name, "mimeType": "application/octet-stream", "buffer": data}


def serious_accessibility_findings(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def wait_until(page, expression: str, timeout: float = 20.0) -> None:
    """Poll a JavaScript expression until it is true. (``page.wait_for_function`` evaluates its
    predicate with ``eval``, which the page's Content-Security-Policy rightly forbids.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.1)


def image_loaded(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")


def test_the_page_end_to_end(server, page, shots):
    page.goto(f"{server.url}/#gallery")

    # keys are set: the first API call asks for one
    dialog = page.locator("#key-dialog")
    dialog.wait_for(state="visible")
    assert "needs an API key" in page.text_content("#key-reason")
    page.screenshot(path=shots / "web-key.png")
    page.fill("#key-input", ADMIN_KEY)
    page.click("#key-form button[value=save]")
    dialog.wait_for(state="hidden")
    assert page.evaluate("sessionStorage.getItem('gaitlab-api-key')") == ADMIN_KEY
    page.problems.clear()  # the 401 that prompted for the key is expected

    # enroll two subjects: alice with two clips (one bulk request), bob with one
    page.fill("#enroll-subject", "alice")
    page.fill("#enroll-condition", "nm-01")
    page.fill("#enroll-view", "090")
    page.set_input_files(
        "#enroll-clips",
        [
            clip_file("a1.npy", walker_clip(0, width=8)),
            clip_file("a2.npy", walker_clip(4, width=8)),
        ],
    )
    page.click("#enroll-form button[type=submit]")
    wait_until(
        page, "document.querySelector('#enroll-status').textContent.startsWith('Enrolled 2')"
    )
    page.fill("#enroll-subject", "bob")
    page.set_input_files("#enroll-clips", [clip_file("b1.npy", walker_clip(0, width=20))])
    page.click("#enroll-form button[type=submit]")
    wait_until(
        page, "document.querySelector('#enroll-status').textContent.startsWith('Enrolled 1')"
    )
    page.wait_for_selector("#subjects tr[data-subject=bob]")
    assert page.text_content("#subjects tr[data-subject=alice] td") == "2"
    page.wait_for_selector("#subject-detail tr[data-sample] img.gei")
    wait_until(
        page,
        "[...document.querySelectorAll('#subject-detail img.gei')]"
        ".every(i => i.complete && i.naturalWidth > 0)",
    )
    page.screenshot(path=shots / "web-gallery.png", full_page=True)
    findings = serious_accessibility_findings(page)
    assert findings == [], "\n".join(findings)

    # filter
    page.fill("#filter", "ali")
    page.click("#filter-form button")
    wait_until(page, "document.querySelectorAll('#subjects tbody tr').length === 1")
    assert page.text_content("#page-info") == "1–1 of 1"
    page.fill("#filter", "")
    page.click("#filter-form button")
    wait_until(page, "document.querySelectorAll('#subjects tbody tr').length === 2")

    # identify a probe of bob's: bob on top, with his sample's GEI and the probe's pictures
    page.click("#tab-identify")
    page.set_input_files("#identify-clip", [clip_file("probe.npy", walker_clip(10, width=20))])
    page.click("#identify-form button[type=submit]")
    page.wait_for_selector("#identify-result .hit")
    assert page.get_attribute("#identify-result .hit", "data-subject") == "bob"
    assert "Named: bob" in page.text_content("#identify-result .decision")
    assert "strangers' searches of this gallery score this high" in page.text_content(
        "#identify-result .decision"
    ).replace("Strangers", "strangers")
    assert page.locator("#identify-result .hit.named .score-bar.doubt").count() == 1
    wait_until(
        page,
        "(() => { const i = document.querySelector('#identify-result .hit img.gei');"
        " return i.complete && i.naturalWidth > 0; })()",
    )
    assert image_loaded(page, "#identify-result .probe img.strip")
    assert image_loaded(page, "#identify-result .probe img.gei")
    note = page.text_content("#identify-result .threshold-note")
    assert "at most 1.0 % of searches by people who are not enrolled name anyone" in note
    assert "gallery of 2 subjects" in note
    page.screenshot(path=shots / "web-identify.png", full_page=True)
    findings = serious_accessibility_findings(page)
    assert findings == [], "\n".join(findings)

    # somebody nobody enrolled: "nobody" is the answer, with the closest and why not
    page.set_input_files("#identify-clip", [clip_file("stranger.npy", walker_clip(0, width=60))])
    page.click("#identify-form button[type=submit]")
    wait_until(page, "document.querySelector('#identify-result .decision.unknown') !== null")
    nobody = page.text_content("#identify-result .decision")
    assert "Nobody enrolled" in nobody
    assert "The closest, " in nobody
    assert page.locator("#identify-result .hit.named").count() == 0
    page.screenshot(path=shots / "web-identify-nobody.png", full_page=True)

    # verify
    page.click("#tab-verify")
    page.set_input_files("#verify-clip", [clip_file("probe.npy", walker_clip(10, width=20))])
    page.fill("#verify-subject", "bob")
    page.click("#verify-form button[type=submit]")
    page.wait_for_selector("#verify-result .decision")
    assert page.text_content("#verify-result .decision").startswith("Accepted: bob")
    page.screenshot(path=shots / "web-verify.png", full_page=True)
    findings = serious_accessibility_findings(page)
    assert findings == [], "\n".join(findings)

    # an API error shows its detail next to what caused it
    page.fill("#verify-subject", "nobody")
    page.click("#verify-form button[type=submit]")
    wait_until(page, "document.querySelector('#verify-error').textContent.length > 0")
    assert page.text_content("#verify-error") == "404: no subject 'nobody' in the gallery"
    assert [p for p in page.problems if "status of 404" not in p] == []
    page.problems.clear()  # the browser logs the expected 404

    # delete alice after the confirmation
    page.click("#tab-gallery")
    page.click("#subjects tr[data-subject=alice] button.danger")
    page.locator("#confirm-dialog").wait_for(state="visible")
    assert "Delete subject alice" in page.text_content("#confirm-text")
    page.click("#confirm-dialog button[value=yes]")
    page.wait_for_selector("#subjects tr[data-subject=alice]", state="detached")
    assert page.locator("#subjects tbody tr").count() == 1

    # the model view
    page.click("#tab-model")
    page.wait_for_selector("#model-info dl")
    assert "toy-1" in page.text_content("#model-info")
    assert "score ≥ 0.9500: 1.0 % FAR" in page.text_content("#model-info ul")
    assert "per pair" in page.text_content("#model-info .threshold-meaning")
    proof = page.text_content("#model-info dl")
    assert "agrees with its fp32 reference: worst agreement 1.0000 over 4 clips" in proof
    assert "toy-1-int8-00000000 was refused on this CPU (agreement -1.0000" in proof
    assert "passed" in proof  # the self-test, with its agreement
    page.screenshot(path=shots / "web-model.png", full_page=True)
    findings = serious_accessibility_findings(page)
    assert findings == [], "\n".join(findings)

    assert page.problems == []


def test_keyboard_and_phone_width(server, page, shots):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(server.url)
    page.evaluate(f"sessionStorage.setItem('gaitlab-api-key', '{CLIENT_KEY}')")
    page.reload()
    assert page.is_visible("#identify")
    # by keyboard alone: Tab to the Gallery tab and press Enter
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "tab-gallery":
            break
    page.keyboard.press("Enter")
    page.wait_for_selector("#gallery:not([hidden])")
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right"
        " > window.innerWidth + 1).map(e => e.tagName + '#' + e.id + '.' + e.className)"
    )
    assert wide == []
    page.screenshot(path=shots / "web-phone.png", full_page=True)
    # every form control has a label
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('input')].filter(i => !i.labels.length).map(i => i.id)"
    )
    assert unlabelled == []
    findings = serious_accessibility_findings(page)
    assert findings == [], "\n".join(findings)
    assert page.problems == []
