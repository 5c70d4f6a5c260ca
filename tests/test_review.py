"""`vindr review` (issue 12), library and HTTP: the committed sample export anonymized (burned-in
text redacted) and selected, real files, real rendering through vindr's display pipeline, a real
server on 127.0.0.1 spoken to with urllib.

Queues are counted against the manifest and selection tables; the server refuses a request
without the token, with another Host, or for any path outside its ids (``../``); the decisions
journal is append-only, undo voids, a torn last line is survived, and two threads deciding at
once lose nothing. No answer carries a path or a header value."""
from __future__ import annotations

import http.client
import json
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE
from helpers import key_file_in, run_cli, stopped
from vindr_cli.curate.recipe import load_recipe
from vindr_cli.curate.select import select
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile
from vindr_cli.review import decisions
from vindr_cli.review.queues import ReviewDirError, build_queues
from vindr_cli.review.server import CACHE, ReviewApp, make_server, url_of


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """(anonymized tree, SELECTION folder beside it) of the committed sample export."""
    base = tmp_path_factory.mktemp("review")
    anon, sel = base / "anon", base / "selection"
    anonymize(SAMPLE / "export", anon, key_path=key_file_in(base), profile=load_profile(), workers=1)
    select(anon, sel, load_recipe("vindr-cxr"), seed=0, n=None, workers=1)
    return anon, sel


def _manifest(anon: Path) -> list[dict]:
    return [r for r in pq.read_table(anon / "manifest.parquet").to_pylist() if r["status"] == "ok"]


def test_queues_of_a_tree_match_the_manifest(trees):
    anon, _ = trees
    rows = _manifest(anon)
    q = build_queues(anon, spot=5, seed=1)
    modified = sorted(r["image_id"] for r in rows if r["pixels_modified"])
    assert len(modified) >= 2                        # the sample's burned-in text was redacted
    assert q.queues["redacted"] == modified
    assert q.queues["qc"] == [] and q.queues["duplicates"] == [] and q.queues["residual-text"] == []
    spot = q.queues["spot-check"]
    assert len(spot) == 5 and not set(spot) & set(modified)
    assert spot == build_queues(anon, spot=5, seed=1).queues["spot-check"]      # seeded
    assert spot != build_queues(anon, spot=5, seed=2).queues["spot-check"]
    # masked boxes come from the manifest, in DICOM pixels
    for iid in modified:
        r = next(r for r in rows if r["image_id"] == iid)
        assert q.images[iid].redactions == json.loads(r["redactions"])


def test_queues_of_a_selection(trees):
    anon, sel = trees
    srows = pq.read_table(sel / "selection.parquet").to_pylist()
    q = build_queues(sel, spot=100, whole_tree=True)   # every row; the default: tests/test_newuser4.py
    assert q.tree == anon.resolve()                  # found beside SELECTION by its manifest hash
    assert q.queues["qc"] == sorted(r["image_id"] for r in srows if r["qc_flags"])
    dup = [r for r in srows if r["dup_group"]]
    assert sorted(q.queues["duplicates"]) == sorted(r["image_id"] for r in dup) and dup
    groups = [q.images[i].dup_group for i in q.queues["duplicates"]]
    assert groups == sorted(groups)                  # members of a group side by side
    flagged = q.flagged() | set(q.queues["redacted"])
    assert set(q.queues["spot-check"]) == {r["image_id"] for r in srows} - flagged - \
        {i for i, im in q.images.items() if im.modified}
    with pytest.raises(ReviewDirError):
        build_queues(sel.parent)                     # neither a tree nor a selection


def test_residual_text_queue_from_an_audit_report(trees, tmp_path):
    anon, _ = trees
    rows = _manifest(anon)
    report = {"findings": [{"kind": "pixel-text", "where": rows[0]["output"],
                            "detail": "text (readable) that is not an allowed marker in frame 0, box x 3-40, y 5-17"},
                           {"kind": "pixel-text", "where": rows[0]["output"], "detail": "text (date) in frame 0"},
                           {"kind": "phi", "where": rows[1]["output"], "detail": "element"},
                           {"kind": "pixel-mask", "where": rows[2]["output"], "detail": "mask"}]}
    path = tmp_path / "audit.json"
    path.write_text(json.dumps(report))
    q = build_queues(anon, audit_report=path)
    assert q.queues["residual-text"] == sorted([rows[0]["image_id"], rows[2]["image_id"]])
    assert q.images[rows[0]["image_id"]].residual == 2
    assert q.images[rows[0]["image_id"]].findings == [[0, 3, 5, 40, 17]]      # outlined on the page
    assert q.images[rows[2]["image_id"]].findings == []                       # a mask finding has no box
    path.write_text("not json")
    with pytest.raises(ReviewDirError):
        build_queues(anon, audit_report=path)


def test_decisions_journal_undo_and_parquet(tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    a, b = "a" * 32, "b" * 32
    decisions.record(d, a, "redacted", "accept", reviewer="r1")
    decisions.record(d, b, "qc", "exclude", reviewer="r1")
    decisions.record(d, a, "redacted", "more-redaction", box=[0, 1, 2, 10, 20], reviewer="r1", shape=(64, 64, 1))
    assert decisions.current(d) == {a: "more-redaction", b: "exclude"}
    u = decisions.undo(d, reviewer="r1")             # voids the latest in force: a's box
    assert u["decision"] == "undo" and u["undoes"] == 2 and u["image_id"] == a
    assert decisions.current(d) == {a: "accept", b: "exclude"}
    decisions.undo(d, image_id=b)
    assert decisions.current(d) == {a: "accept"}
    assert decisions.undecided(d, {"redacted": [a], "qc": [b]}) == {"redacted": [], "qc": [b]}
    table = pq.read_table(decisions.parquet_path(d))
    assert table.column_names == ["seq", "image_id", "queue", "decision", "box", "time", "reviewer", "undoes"]
    rows = table.to_pylist()
    assert [r["decision"] for r in rows] == ["accept", "exclude", "more-redaction", "undo", "undo"]
    assert rows[2]["box"] == "[0, 1, 2, 10, 20]" and rows[0]["box"] is None
    assert [r["undoes"] for r in rows] == [None, None, None, 2, 1]
    assert all(r["time"].endswith("Z") for r in rows)
    # refused: unknown decision, queue, a box out of the image or on the wrong decision
    for kw in ({"decision": "maybe"}, {"queue": "nope"}, {"decision": "more-redaction", "box": [0, 0, 0, 65, 5]},
               {"decision": "more-redaction", "box": [0, 5, 5, 5, 9]}, {"decision": "more-redaction"},
               {"decision": "accept", "box": [0, 1, 1, 2, 2]}):
        args = {"queue": "qc", "decision": "accept", **kw}
        with pytest.raises(decisions.DecisionError):
            decisions.record(d, a, args.pop("queue"), args.pop("decision"), shape=(64, 64, 1), **args)
    assert len(decisions.read_rows(d)) == 5


def test_an_image_in_two_queues_is_decided_in_each(tmp_path):
    d = tmp_path / "dir"
    a, b = "a" * 32, "b" * 32
    queues = {"redacted": [a, b], "qc": [a, b]}
    decisions.record(d, a, "redacted", "more-redaction", box=[0, 0, 0, 4, 4])
    decisions.record(d, a, "qc", "accept")           # accepting a QC flag keeps the box in force
    assert decisions.current(d) == {a: "more-redaction"}
    assert decisions.undecided(d, queues) == {"redacted": [b], "qc": [b]}
    decisions.record(d, b, "qc", "accept")
    assert decisions.undecided(d, queues) == {"redacted": [b], "qc": []}
    decisions.record(d, b, "qc", "exclude")           # an exclusion anywhere decides every queue
    assert decisions.undecided(d, queues) == {"redacted": [], "qc": []}
    assert decisions.current(d) == {a: "more-redaction", b: "exclude"}


def test_a_torn_last_line_is_survived(tmp_path):
    d = tmp_path / "dir"
    decisions.record(d, "a" * 32, "qc", "accept")
    with open(decisions.journal_path(d), "ab") as f:
        f.write(b'{"seq": 1, "image_id": "bbbb')          # a crash mid-write
    assert decisions.current(d) == {"a" * 32: "accept"}
    decisions.record(d, "c" * 32, "qc", "exclude")
    assert decisions.current(d) == {"a" * 32: "accept", "c" * 32: "exclude"}
    assert [r["seq"] for r in decisions.read_rows(d)] == [0, 1]


def test_two_threads_deciding_at_once_lose_nothing(tmp_path):
    d = tmp_path / "dir"
    ids = [f"{i:032x}" for i in range(40)]
    barrier = threading.Barrier(2)

    def work(part):
        barrier.wait()
        for i in part:
            decisions.record(d, i, "spot-check", "accept" if int(i, 16) % 2 else "exclude", reviewer="t")

    threads = [threading.Thread(target=work, args=(ids[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = decisions.read_rows(d)
    assert sorted(r["seq"] for r in rows) == list(range(40))
    assert decisions.current(d) == {i: "accept" if int(i, 16) % 2 else "exclude" for i in ids}
    assert len(pq.read_table(decisions.parquet_path(d))) == 40


# ------------------------------------------------------------------------------ HTTP


@pytest.fixture
def server(trees, tmp_path):
    """A server on a copy-free SELECTION review dir (decisions go to a fresh DIR each test)."""
    anon, sel = trees
    q = build_queues(sel, spot=3)
    q.review_dir = tmp_path / "rdir"           # decisions/cache here, not in the shared fixture
    app = ReviewApp(q, reviewer="tester")
    srv = make_server(app)
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    th.start()
    yield srv, app, url_of(srv, app)
    srv.shutdown()
    srv.server_close()
    th.join(10)


def _raw(srv, method, path, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=30)
    c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for k, v in (headers or {}).items():
        c.putheader(k, v)
    if body is not None:
        c.putheader("Content-Length", str(len(body)))
    c.endheaders(body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def test_binds_loopback_only(server):
    srv, app, url = server
    assert srv.server_address[0] == "127.0.0.1"
    assert url.startswith(f"http://127.0.0.1:{srv.server_address[1]}/?t=") and len(app.token) >= 40


def test_a_port_in_use_is_a_request_error(server):
    from vindr_cli.errors import RequestError

    srv, app, _ = server
    with pytest.raises(RequestError, match="choose another --port"):
        make_server(app, srv.server_address[1])


def test_token_and_host_are_required(server):
    srv, app, _ = server
    port = srv.server_address[1]
    host = {"Host": f"127.0.0.1:{port}"}
    assert _raw(srv, "GET", "/", host)[0] == 403
    assert _raw(srv, "GET", "/api/state", host)[0] == 403
    assert _raw(srv, "GET", "/?t=wrong", host)[0] == 403
    assert _raw(srv, "GET", "/api/state", {**host, "X-Vindr-Token": app.token[:-1]})[0] == 403
    status, headers, body = _raw(srv, "GET", f"/?t={app.token}", host)
    assert status == 200 and b"review.js" in body
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    assert headers["Referrer-Policy"] == "no-referrer" and "default-src 'self'" in headers["Content-Security-Policy"]
    assert _raw(srv, "GET", "/api/state", {**host, "Cookie": cookie})[0] == 200
    assert _raw(srv, "GET", "/api/state", {"Host": f"localhost:{port}", "X-Vindr-Token": app.token})[0] == 200
    # DNS rebinding: the right token but another Host
    for other in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1", ""):
        assert _raw(srv, "GET", f"/?t={app.token}", {"Host": other} if other else {})[0] == 403, other
    # a POST from another origin, even with the cookie
    body = json.dumps({"image_id": "0" * 32, "queue": "qc", "decision": "accept"}).encode()
    assert _raw(srv, "POST", "/api/decide", {**host, "Cookie": cookie, "Origin": "http://evil.example"}, body)[0] == 403


def test_no_path_reaches_the_file_system(server, trees):
    srv, app, _ = server
    port = srv.server_address[1]
    h = {"Host": f"127.0.0.1:{port}", "X-Vindr-Token": app.token}
    anon, _ = trees
    some = _manifest(anon)[0]["output"]
    for path in ("/../manifest.parquet", "/static/../server.py", "/static/../../cli.py", "/static/%2e%2e/server.py",
                 "/api/image/../../manifest.parquet", "/api/image/..%2f..%2fmanifest.parquet.png",
                 f"/api/image/{some}.png", f"/api/image/{'0' * 32}.png", "/etc/passwd", "/static/",
                 "/api/image/" + "a" * 32 + ".png/../../x.png", "/manifest.parquet", "/.vindr/review.jsonl"):
        status, _, body = _raw(srv, "GET", path, h)
        assert status == 404, path
        assert b"PAR1" not in body and b"import" not in body


def test_state_images_and_windows(server, trees):
    srv, app, url = server
    port = srv.server_address[1]
    h = {"Host": f"127.0.0.1:{port}", "X-Vindr-Token": app.token}
    status, _, body = _raw(srv, "GET", "/api/state", h)
    state = json.loads(body)
    assert {q: p["total"] for q, p in state["progress"].items()} == app.queues.counts()
    text = body.decode()
    anon, _ = trees
    for r in _manifest(anon):                           # no path, no substitute value on the page
        assert r["output"] not in text and r["patient_id"] not in text and r["study_uid"] not in text
    iid = app.queues.queues["redacted"][0]
    pngs = {}
    for window in ("header", "wider", "narrower"):
        status, headers, png = _raw(srv, "GET", f"/api/image/{iid}.png?size=large&window={window}", h)
        assert status == 200 and headers["Content-Type"] == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"
        pngs[window] = png
    assert len(set(pngs.values())) == 3                  # three different renderings
    cached = sorted(p.name for p in (app.review_dir / CACHE).iterdir())
    assert len(cached) == 3 and all(n.startswith(iid) and n.endswith(".png") for n in cached)
    assert _raw(srv, "GET", f"/api/image/{iid}.png?size=huge", h)[0] == 404
    assert _raw(srv, "GET", f"/api/image/{iid}.png?window=../x", h)[0] == 404


def test_decide_and_undo_over_http(server):
    srv, app, _ = server
    port = srv.server_address[1]
    base = f"http://127.0.0.1:{port}"
    h = {"X-Vindr-Token": app.token, "Content-Type": "application/json"}

    def post(path, obj):
        req = urllib.request.Request(base + path, json.dumps(obj).encode(), h, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    red = app.queues.queues["redacted"]
    img = app.queues.images[red[0]]
    post("/api/decide", {"image_id": red[0], "queue": "redacted", "decision": "accept"})
    r = post("/api/decide", {"image_id": red[1], "queue": "redacted", "decision": "more-redaction",
                             "box": [0, 1, 1, img.cols // 2, img.rows // 2]})
    assert r["state"]["progress"]["redacted"]["decided"] == 2
    assert r["state"]["decisions"][red[1]]["redacted"]["box"] == [0, 1, 1, img.cols // 2, img.rows // 2]
    with pytest.raises(urllib.error.HTTPError) as e:     # an image not in that queue
        post("/api/decide", {"image_id": app.queues.queues["spot-check"][0], "queue": "redacted", "decision": "accept"})
    assert e.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as e:
        post("/api/decide", {"image_id": "../../etc", "queue": "redacted", "decision": "accept"})
    assert e.value.code == 400
    r = post("/api/undo", {})
    assert r["row"]["undoes"] == 1 and red[1] not in r["state"]["decisions"]
    assert decisions.current(app.review_dir) == {red[0]: "accept"}
    rows = pq.read_table(app.review_dir / ".vindr" / "review.parquet").to_pylist()
    assert [(x["decision"], x["reviewer"]) for x in rows] == [("accept", "tester"), ("more-redaction", "tester"),
                                                              ("undo", "tester")]


def test_cli_refuses_a_folder_that_is_not_reviewable(tmp_path):
    r = run_cli("review", str(tmp_path), "--no-browser", check=False)
    assert r.returncode == 2
    assert "neither a de-identified tree" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------ release gate


@pytest.fixture(scope="module")
def split_dir(trees):
    from vindr_cli.release.handoff import run_split

    anon, sel = trees
    out = anon.parent / "split"
    run_split(SAMPLE / "annotations" / "vindr_cxr_annotations.csv", anon / "manifest.parquet", out,
              linkage=anon.parent / "anon.linkage.parquet", test_size="0.3", unit="patients", seed=1, selection=sel)
    return out


def test_release_obeys_the_review(trees, split_dir, tmp_path):
    import pandas as pd

    from vindr_cli.release.build import build_release
    from vindr_cli.review.gate import EXCLUDED, Unreviewed

    anon, sel = trees
    # no review at all: released, and the datasheet says "not reviewed"
    s = build_release(anon, split_dir, tmp_path / "r0", selection=sel)
    sheet = json.loads((tmp_path / "r0" / "datasheet.json").read_text())
    assert sheet["review"] == {"status": "not reviewed"} and any("not reviewed" in w for w in s.warnings)
    assert "Not reviewed" in (tmp_path / "r0" / "README.md").read_text()
    released = set(pd.read_csv(tmp_path / "r0" / "images.csv")["image_id"])

    rdir = tmp_path / "reviewed"                     # the review of this selection, kept out of the fixture
    shutil.copytree(sel, rdir, ignore=shutil.ignore_patterns("dicom"))
    q = build_queues(rdir, tree=anon)
    flagged_released = sorted({i for name in decisions.FLAGGED for i in q.queues[name]} & released)
    assert flagged_released                           # the sample releases a redacted image and a duplicate
    spot = sorted(released - set(flagged_released))[0]
    decisions.record(rdir, spot, "spot-check", "accept")
    with pytest.raises(Unreviewed) as e:
        build_release(anon, split_dir, tmp_path / "r1", selection=sel, review=rdir)
    assert f"{len(flagged_released)} flagged image(s)" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "r1").exists()
    r = run_cli("release", anon, "--split", split_dir, "-o", tmp_path / "r1", "--selection", sel, "--review", rdir,
                check=False)
    assert r.returncode == 2 and "--allow-unreviewed" in r.stderr and not (tmp_path / "r1").exists()

    build_release(anon, split_dir, tmp_path / "r2", selection=sel, review=rdir, allow_unreviewed=True)
    rv = json.loads((tmp_path / "r2" / "datasheet.json").read_text())["review"]
    assert rv["status"] == "reviewed" and rv["allowed_unreviewed"] is True
    assert (rv["decided"], rv["undecided"]) == (0, len(flagged_released))

    # every flagged image decided (one excluded): released without it, counted
    for name in decisions.FLAGGED:
        for i in q.queues[name]:
            decisions.record(rdir, i, name, "exclude" if i == flagged_released[0] else "accept")
    s = build_release(anon, split_dir, tmp_path / "r3", selection=sel, review=rdir)
    rv = json.loads((tmp_path / "r3" / "datasheet.json").read_text())["review"]
    assert (rv["decided"], rv["undecided"], rv["excluded"], rv["allowed_unreviewed"]) == (
        len(flagged_released), 0, 1, False)
    assert set(pd.read_csv(tmp_path / "r3" / "images.csv")["image_id"]) == released - {flagged_released[0]}
    assert s.dropped[EXCLUDED] == 1
    assert "1 excluded" in (tmp_path / "r3" / "README.md").read_text()


def test_prefetch_fills_the_cache(trees, tmp_path):
    import threading as th

    from vindr_cli.review.server import prefetch

    _, sel = trees
    q = build_queues(sel, spot=2)
    q.review_dir = tmp_path / "rdir"
    app = ReviewApp(q)
    prefetch(app, th.Event())
    queued = {i for ids in q.queues.values() for i in ids}
    cached = {p.name[:32] for p in (q.review_dir / CACHE).iterdir()}
    assert cached == queued and not list(q.review_dir.rglob("*.vindr-part"))
    stopped = ReviewApp(build_queues(sel, spot=2))
    stopped.queues.review_dir = tmp_path / "other"
    ev = th.Event()
    ev.set()
    prefetch(stopped, ev)                                # a stop before the first image renders nothing
    assert not (tmp_path / "other").exists()


def test_audit_accepts_what_review_leaves_in_the_tree(trees, tmp_path):
    """Reviewing a de-identified tree writes DIR/.vindr/review.* and the rendering cache:
    vindr audit knows them as vindr's own (no stray-file finding), and still flags a stray."""
    from vindr_cli.deid.audit import audit

    anon, _ = trees
    tree = tmp_path / "anon"
    shutil.copytree(anon, tree)
    q = build_queues(tree, spot=1)
    app = ReviewApp(q)
    iid = q.queues["redacted"][0]
    for window in ("header", "wider"):
        app.image(iid, "thumb", window, 0)
    app.image(iid, "large", "narrower", 0)
    decisions.record(tree, iid, "redacted", "accept")
    assert len(list((tree / CACHE).iterdir())) == 3 and decisions.parquet_path(tree).is_file()
    report = audit(tree, pixels=False)
    assert [f for f in report.findings if f.kind == "stray-file"] == []
    (tree / CACHE / "notes.txt").write_text("x")
    report = audit(tree, pixels=False)
    # vindr's own folders shown, the stray's own name a placeholder (it may be a patient's)
    assert [f.where for f in report.findings if f.kind == "stray-file"] == [".vindr/review/cache/<name 1>.txt"]
    assert report.locations() == [(".vindr/review/cache/<name 1>.txt", ".vindr/review/cache/notes.txt")]


def test_the_command_prints_its_url_serves_and_stops_on_ctrl_c(trees, tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys

    anon, _ = trees
    tree = tmp_path / "anon"
    shutil.copytree(anon, tree)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "COLUMNS": "80"}
    proc = subprocess.Popen([sys.executable, "-m", "vindr_cli", "review", str(tree), "--no-browser", "--spot", "4",
                             "--reviewer", "cli"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        printed = []
        for line in proc.stdout:
            printed.append(line)
            m = re.search(r"open: (http://127\.0\.0\.1:(\d+)/\?t=(\S+))", line)
            if m:
                break
        assert m, "".join(printed)
        url, token = m.group(1), m.group(3)
        assert "spot-check" in "".join(printed)                      # the queue table came first
        with urllib.request.urlopen(url, timeout=30) as r:          # the page, with its cookie
            assert r.status == 200 and "HttpOnly" in r.headers["Set-Cookie"]
        req = urllib.request.Request(url.split("?")[0] + "api/state", headers={"X-Vindr-Token": token})
        with urllib.request.urlopen(req, timeout=30) as r:
            state = json.loads(r.read())
        assert state["reviewer"] == "cli" and state["progress"]["spot-check"]["total"] == 4
    finally:
        proc.send_signal(signal.SIGINT)
        rc = stopped(proc)
    out = proc.stdout.read() + proc.stderr.read()
    assert rc == 0 and "Traceback" not in out and str(anon) not in out
