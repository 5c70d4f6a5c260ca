"""`vindr review` in a real browser (issue 12): Debian's headless Chromium driven by Selenium
through Debian's chromedriver (paths given, SE_OFFLINE=1: Selenium Manager never downloads).

The server is the real command (``python -m vindr_cli review SELECTION --no-browser``) on the
sample export, anonymized and selected here; the test opens the URL it prints, checks the
queue counts, presses A and X, draws a box for D, reloads and sees the same state, undoes,
checks review.parquet, and has two tabs decide at once without losing a decision. Ctrl-C
(SIGINT) stops the server. Set VINDR_REVIEW_SHOTS=DIR to keep a screenshot of each queue."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE
from vindr_cli.curate.recipe import load_recipe
from vindr_cli.curate.select import select
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile
from helpers import key_file_in, stopped
from vindr_cli.tables import read_rows
from vindr_cli.review import decisions
from vindr_cli.review.queues import build_queues

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM.is_file() and DRIVER.is_file()),
                                reason="Debian chromium / chromium-driver not installed")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WAIT = 60        # an upper bound for a busy machine, never a timing assertion


@pytest.fixture(scope="module")
def selection(tmp_path_factory):
    base = tmp_path_factory.mktemp("review_browser")
    anon, sel = base / "anon", base / "selection"
    # a third image for the redacted queue (A, X and D below): the patient's name burned into one
    # of the export's real 128-px CTs (its text-free anatomy is no longer masked, smallimg)
    import shutil

    import numpy as np
    import pydicom

    from helpers import draw_text
    export = base / "export"
    shutil.copytree(SAMPLE / "export", export)
    ct = next(export.glob("DUONG THI THU_*/*/S01_CT_AXIAL/IMG_DuongThiThu_0003.dcm"))
    ds = pydicom.dcmread(ct)
    arr = ds.pixel_array.copy()
    ink, _ = draw_text(np.zeros(arr.shape, np.uint8), "DUONG THI THU", (2, arr.shape[0] - 14), 10,
                       "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    arr[ink >= 96] = arr.max()
    ds.PixelData = arr.tobytes()
    ds.save_as(ct)
    anonymize(export, anon, key_path=key_file_in(base), profile=load_profile(), workers=1)
    select(anon, sel, load_recipe("vindr-cxr"), seed=0, n=None, workers=1)
    ok = [r for r in pq.read_table(anon / "manifest.parquet").to_pylist() if r["status"] == "ok"]
    report = base / "audit.json"          # one residual-text finding, in the form vindr audit --report writes
    detail = "text (readable) that is not an allowed marker in frame 0, box x 2-30, y 4-14"
    report.write_text(json.dumps({"findings": [{"kind": "pixel-text", "where": ok[0]["output"], "detail": detail}]}))
    return anon, sel, report


@pytest.fixture(scope="module")
def server(selection):
    anon, sel, report = selection
    env = {**os.environ, "PYTHONPATH": str(REPO), "VINDR_DEBUG": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "vindr_cli", "review", str(sel), "--no-browser", "--whole-tree",
                             "--spot", "6",
                             "--reviewer", "custodian", "--audit-report", str(report)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"open: (http://127\.0\.0\.1:\d+/\?t=\S+)", line)
        if m:
            url = m.group(1)
            break
    assert url, "".join(lines) + proc.stderr.read()
    yield url, proc, "".join(lines)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        stopped(proc)


@pytest.fixture(scope="module")
def driver():
    os.environ["SE_OFFLINE"] = "1"
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
              "--disable-gpu", "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    yield d
    d.quit()


def _wait(driver, cond, what):
    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(lambda d: cond(d), message=what)


def _tabs(driver) -> dict[str, tuple[int, int]]:
    # read in one script: the page re-renders when its 2 s poll sees a change
    got = driver.execute_script(
        "return [...document.querySelectorAll('#tabs button')].map(b => [b.dataset.queue,"
        " b.querySelector('.count').textContent]);")
    return {q: tuple(int(x) for x in c.split("/")) for q, c in got}


def _open_queue(driver, queue):
    driver.execute_script("document.querySelector(`#tabs button[data-queue='${arguments[0]}']`).click();", queue)
    _wait(driver, lambda d: d.execute_script(
        "const b=document.querySelector(`#tabs button[data-queue='${arguments[0]}']`);"
        "return b && b.className === 'active';", queue), f"queue {queue} shown")


def _badges(driver) -> dict[str, str]:
    return dict(driver.execute_script(
        "return [...document.querySelectorAll('#grid .tile')].filter(t => t.querySelector('.badge'))"
        ".map(t => [t.dataset.id, t.querySelector('.badge').textContent]);"))


def _count(driver, css) -> int:
    return driver.execute_script("return document.querySelectorAll(arguments[0]).length;", css)


def _thumbs_loaded(driver) -> bool:
    return driver.execute_script(
        "const im=[...document.querySelectorAll('#grid .tile img')];"
        "return im.length>0 && im.every(i=>i.complete && i.naturalWidth>0);")


def _key(driver, k):
    ActionChains(driver).send_keys(k).perform()


def _rows(sel: Path) -> list[dict]:
    p = decisions.parquet_path(sel)
    return read_rows(p) if p.is_file() else []     # one open file: the server renames a new table in


def test_review_in_a_browser(selection, server, driver, tmp_path):
    anon, sel, report = selection
    url, proc, printed = server
    expected = build_queues(sel, spot=6, audit_report=report, whole_tree=True).counts()
    assert all(expected[q] for q in expected), expected          # every queue has images to look at
    assert "undecided" in printed                                 # the summary table came first
    shots = Path(os.environ.get("VINDR_REVIEW_SHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)

    driver.get(url)
    _wait(driver, lambda d: len(_tabs(d)) == 5, "queue tabs")
    assert _tabs(driver) == {q: (0, n) for q, n in expected.items()}
    for q in expected:                                            # every queue renders, thumbnails load
        _open_queue(driver, q)
        _wait(driver, lambda d: _count(d, "#grid .tile") == expected[q], f"{q} tiles")
        _wait(driver, _thumbs_loaded, f"{q} thumbnails")
        if q == "duplicates":
            assert _count(driver, "#grid .group") >= 2
        if q == "residual-text":                                  # the audit finding's box, outlined
            assert _count(driver, "#grid .tile rect.finding") == 1
        driver.save_screenshot(str(shots / f"queue-{q}.png"))
    text = driver.find_element(By.TAG_NAME, "body").text
    for r in pq.read_table(anon / "manifest.parquet").to_pylist():   # no path, no header value
        for v in (r["output"], r["patient_id"], r["study_uid"]):
            assert not v or v not in text

    # redacted queue: masked boxes outlined; A, X, then D with a box drawn in the large view
    _open_queue(driver, "redacted")
    _wait(driver, _thumbs_loaded, "redacted thumbnails")
    assert _count(driver, "#grid .tile rect.mask") >= 2
    ids = driver.execute_script("return [...document.querySelectorAll('#grid .tile')].map(t => t.dataset.id);")
    _key(driver, "a")
    _wait(driver, lambda d: _badges(d).get(ids[0]) == "accepted", "accept shown")
    _key(driver, "x")
    _wait(driver, lambda d: _badges(d).get(ids[1]) == "excluded", "exclude shown")
    _key(driver, "d")                                             # large view, drawing mode
    _wait(driver, lambda d: d.find_element(By.ID, "large").is_displayed(), "large view")
    _wait(driver, lambda d: d.execute_script("const i=document.getElementById('large-img');"
                                             "return i.complete && i.naturalWidth>0"), "large image")
    for k in ("2", "3", "1"):                                     # window presets, rendered by the server
        _key(driver, k)
        _wait(driver, lambda d: f"window={['header', 'wider', 'narrower'][int(k) - 1]}"
              in d.find_element(By.ID, "large-img").get_attribute("src"), f"window {k}")
    driver.save_screenshot(str(shots / "large-view.png"))
    overlay = driver.find_element(By.ID, "overlay")
    w, h = overlay.size["width"], overlay.size["height"]
    ActionChains(driver).move_to_element_with_offset(overlay, -w // 4, -h // 4).click_and_hold() \
        .move_by_offset(w // 2, h // 4).release().perform()
    _wait(driver, lambda d: len(_rows(sel)) == 3, "the box saved")
    rows = _rows(sel)
    assert [(r["image_id"], r["queue"], r["decision"], r["reviewer"]) for r in rows] == [
        (ids[0], "redacted", "accept", "custodian"), (ids[1], "redacted", "exclude", "custodian"),
        (ids[2], "redacted", "more-redaction", "custodian")]
    img = build_queues(sel, whole_tree=True).images[ids[2]]
    f, x0, y0, x1, y1 = json.loads(rows[2]["box"])
    # dragged from a quarter in to the middle across, a quarter down: in DICOM pixels
    assert f == 0 and 0 <= x0 < x1 <= img.cols and 0 <= y0 < y1 <= img.rows
    assert abs(x0 - img.cols / 4) <= 2 and abs(x1 - 3 * img.cols / 4) <= 2
    assert abs(y0 - img.rows / 4) <= 2 and abs(y1 - img.rows / 2) <= 2

    # reload: the same state, from the server
    _key(driver, "\ue00c")                                        # Escape
    driver.refresh()
    _wait(driver, lambda d: _tabs(d).get("redacted", (0, 0))[0] == 3, "progress after reload")
    _open_queue(driver, "redacted")
    _wait(driver, lambda d: len(_badges(d)) == 3, "badges after reload")
    assert _badges(driver) == {ids[0]: "accepted", ids[1]: "excluded", ids[2]: "more redaction"}
    assert _count(driver, "#grid .tile rect.drawn") == 1
    driver.save_screenshot(str(shots / "decided.png"))
    _key(driver, "u")                                             # undo voids the box
    _wait(driver, lambda d: len(_badges(d)) == 2, "undo shown")
    rows = _rows(sel)
    assert rows[-1]["decision"] == "undo" and rows[-1]["undoes"] == rows[2]["seq"]
    assert decisions.current(sel) == {ids[0]: "accept", ids[1]: "exclude"}

    # a multi-frame image: ] shows its next frame, rendered by the server
    q_all = build_queues(sel, spot=6, audit_report=report, whole_tree=True)
    multi = next(i for q in q_all.queues for i in q_all.queues[q] if q_all.images[i].frames > 1)
    queue = next(q for q in q_all.queues if multi in q_all.queues[q])
    _open_queue(driver, queue)
    driver.execute_script("document.querySelector(`#grid .tile[data-id='${arguments[0]}']`).click();", multi)
    _wait(driver, lambda d: d.find_element(By.ID, "large").is_displayed(), "large view of the multi-frame image")
    _key(driver, "]")
    _wait(driver, lambda d: d.execute_script(
        "const i=document.getElementById('large-img');"
        "return i.getAttribute('src').includes('frame=1') && i.complete && i.naturalWidth>0;"), "frame 2 shown")
    assert "frame 2/" in driver.find_element(By.ID, "large-title").text
    _key(driver, "\ue00c")                                        # Escape

    # two tabs deciding at once: every decision of both is kept, and each tab sees the other's
    first = driver.current_window_handle
    driver.switch_to.new_window("tab")
    driver.get(url)
    _wait(driver, lambda d: len(_tabs(d)) == 5, "second tab")
    second = driver.current_window_handle
    spot = build_queues(sel, spot=6, audit_report=report, whole_tree=True).queues["spot-check"]
    fire = ("window.__done = 0; const ids = arguments[0], dec = arguments[1];"
            "ids.forEach(id => fetch('/api/decide', {method: 'POST', headers: {'Content-Type': 'application/json',"
            "'X-Vindr-Token': new URLSearchParams(location.search).get('t')}, body: JSON.stringify("
            "{image_id: id, queue: 'spot-check', decision: dec})}).then(r => { if (r.ok) window.__done++; }));")
    for _ in range(3):
        driver.switch_to.window(first)
        driver.execute_script(fire, spot[0::2], "accept")
        driver.switch_to.window(second)
        driver.execute_script(fire, spot[1::2], "exclude")
    _wait(driver, lambda d: len(_rows(sel)) == 4 + 3 * len(spot), "every decision of both tabs saved")
    rows = _rows(sel)
    assert sorted(r["seq"] for r in rows) == list(range(len(rows)))
    cur = decisions.current(sel)
    assert {i: cur[i] for i in spot} == {i: ("accept" if k % 2 == 0 else "exclude") for k, i in enumerate(spot)}
    for handle in (first, second):                                # each tab shows both tabs' decisions
        driver.switch_to.window(handle)
        _wait(driver, lambda d: _tabs(d)["spot-check"][0] == len(spot), "the other tab's decisions")
    _open_queue(driver, "spot-check")
    _wait(driver, lambda d: len(_badges(d)) == len(spot), "spot-check badges")
    driver.save_screenshot(str(shots / "queue-spot-check-decided.png"))
    driver.close()
    driver.switch_to.window(first)

    # Ctrl-C stops the server cleanly; nothing it printed holds a path of the tree
    proc.send_signal(signal.SIGINT)
    assert stopped(proc) == 0
    out = printed + proc.stdout.read() + proc.stderr.read()
    assert "Traceback" not in out and str(anon) not in out
    assert not list(sel.rglob("*.vindr-part"))                    # nothing half-written
