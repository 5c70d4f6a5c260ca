"""`vindr push SELECTION --dicomweb URL` against a real Orthanc (Debian `orthanc` +
`orthanc-dicomweb`), started here on 127.0.0.1 with a temporary configuration and stopped
after: every selected instance retrievable by QIDO-RS, re-push idempotent, refused and
unreachable servers reported per file with nothing lost, credentials never shown.

The SELECTION fixture is built here from real pydicom test files run through
`vindr anonymize` (library call), with a minimal selection.parquet per the #11 contract."""
from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.data import get_testdata_file

from helpers import key_file_in, run_cli
from vindr_cli.curate import push as P
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile
from vindr_cli.errors import RequestError
from vindr_cli.tables import arrow_schema

ORTHANC = shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if os.path.exists(p)), None)
PLUGINS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so")
needs_orthanc = pytest.mark.skipif(ORTHANC is None, reason="the Orthanc binary is missing (apt-get install orthanc orthanc-dicomweb)")

# real pydicom test files: anonymize writes 6 of them (2 CT, 2 MR, SEG, RTDOSE) and
# quarantines the two Secondary Captures
FILES = ["CT_small.dcm", "MR_small.dcm", "liver_1frame.dcm", "rtdose.dcm", "image_dfl.dcm", "693_J2KI.dcm",
         "examples_overlay.dcm", "JPGExtended.dcm"]
WAIT = 60.0     # hang guard for Orthanc's start and stop, far above need


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def anon(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("push-anon")
    raw = base / "raw"
    raw.mkdir()
    for name in FILES:
        src = get_testdata_file(name, download=False)
        assert src is not None, name
        shutil.copy(src, raw / name)
    key = key_file_in(base, "cd")
    anonymize(raw, base / "anon", key_path=key, profile=load_profile("basic"), workers=1, burned_in="off")
    return base / "anon"


def make_selection(anon: Path, dest: Path, *, unselect=("RTDOSE",)) -> tuple[Path, list[dict]]:
    """A minimal SELECTION per the contract: selection.parquet (one row per ok manifest row,
    the modalities in ``unselect`` not selected) and dicom/<image_id>.dcm (hard links)."""
    manifest = [r for r in pq.read_table(anon / "manifest.parquet").to_pylist() if r["status"] == "ok"]
    (dest / "dicom").mkdir(parents=True)
    rows = []
    for r in manifest:
        selected = r["modality"] not in unselect
        rows.append({"image_id": r["image_id"], "output": r["output"], "sop_uid": r["sop_uid"],
                     "study_uid": r["study_uid"], "series_uid": r["series_uid"], "patient_id": r["patient_id"],
                     "modality": r["modality"], "sop_class_uid": r["sop_class_uid"], "rows": r["rows"],
                     "columns": r["columns"], "frames": r["frames"] or 1, "photometric": r["photometric"],
                     "selected": selected, "reasons": [] if selected else ["modality"]})
        if selected:
            os.link(anon / r["output"], dest / "dicom" / f"{r['image_id']}.dcm")
    pq.write_table(pa.Table.from_pylist(rows), dest / "selection.parquet")
    return dest, [r for r in rows if r["selected"]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc, port, auth):
        self.proc, self.port, self.auth = proc, port, auth
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/dicom-web"

    def get(self, path: str):
        req = urllib.request.Request(self.root + path, headers={"Accept": "application/dicom+json, application/json"})
        if self.auth:
            req.add_header("Authorization", "Basic " + base64.b64encode(self.auth.encode()).decode())
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body.strip() else []

    def raw(self, path: str, method: str = "GET") -> bytes:
        req = urllib.request.Request(self.root + path, method=method)
        if self.auth:
            req.add_header("Authorization", "Basic " + base64.b64encode(self.auth.encode()).decode())
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()

    def orthanc_id(self, sop_uid: str) -> str:
        """Orthanc's own id of an instance (REST /tools/lookup)."""
        req = urllib.request.Request(self.root + "/tools/lookup", data=sop_uid.encode(), method="POST")
        if self.auth:
            req.add_header("Authorization", "Basic " + base64.b64encode(self.auth.encode()).decode())
        with urllib.request.urlopen(req, timeout=30) as r:
            found = [x["ID"] for x in json.loads(r.read()) if x["Type"] == "Instance"]
        assert len(found) == 1
        return found[0]

    def qido(self, sop_uid: str) -> list:
        return self.get(f"/dicom-web/instances?SOPInstanceUID={sop_uid}")

    def count(self) -> int:
        return self.get("/statistics")["CountInstances"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)


@contextlib.contextmanager
def orthanc(tmp: Path, *, lua: str | None = None, users: dict | None = None):
    """A real Orthanc with the DICOMweb plugin on 127.0.0.1 (DICOM port off), storage in tmp."""
    plugin = next((p for p in PLUGINS if os.path.exists(p)), None)
    assert plugin, "orthanc-dicomweb is missing (apt-get install orthanc-dicomweb)"
    tmp.mkdir(parents=True, exist_ok=True)
    server = None
    for attempt in range(3):        # a free port may be taken between asking and binding
        port = _free_port()
        store = tmp / f"storage{attempt}"
        store.mkdir()
        cfg = {"Name": "vindr-test", "StorageDirectory": str(store), "IndexDirectory": str(store),
               "HttpPort": port, "DicomServerEnabled": False, "DicomPort": _free_port(),
               "RemoteAccessAllowed": False, "AuthenticationEnabled": bool(users),
               "RegisteredUsers": users or {}, "Plugins": [plugin],
               "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
        if lua:
            (tmp / "filter.lua").write_text(lua)
            cfg["LuaScripts"] = [str(tmp / "filter.lua")]
        (tmp / "orthanc.json").write_text(json.dumps(cfg))
        log = open(tmp / f"orthanc{attempt}.log", "wb")
        proc = subprocess.Popen([ORTHANC, str(tmp / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
        log.close()
        auth = next((f"{u}:{p}" for u, p in (users or {}).items()), None)
        cand = Server(proc, port, auth)
        end = time.monotonic() + WAIT
        while time.monotonic() < end and proc.poll() is None:
            try:
                cand.get("/system")
                server = cand
                break
            except (OSError, ValueError):
                time.sleep(0.2)
        if server:
            break
        cand.stop()
    assert server, "Orthanc did not start (see orthanc*.log in the test's folder)"
    try:
        yield server
    finally:
        server.stop()


def _table(sel: Path) -> dict[str, dict]:
    return {r["image_id"]: r for r in pq.read_table(sel / "push.parquet").to_pylist()}


# ---------------------------------------------------------------- against a real Orthanc

@needs_orthanc
def test_push_stores_every_selected_instance_and_repush_is_idempotent(anon, tmp_path):
    sel, selected = make_selection(anon, tmp_path / "sel")
    assert len(selected) == 5
    with orthanc(tmp_path / "orthanc") as srv:
        seen = []
        s = P.push_selection(sel, srv.url, batch_size=2, progress=lambda d, t: seen.append((d, t)))
        assert s.counts == {"stored": 5} and s.failed == 0
        assert seen[-1] == (5, 5) and len(seen) == 3          # one call per batch of 2
        t = _table(sel)
        assert set(t) == {r["image_id"] for r in selected}
        for r in selected:
            assert t[r["image_id"]]["status"] == "stored" and t[r["image_id"]]["reason"] is None
            assert t[r["image_id"]]["http_status"] == 200
            found = srv.qido(r["sop_uid"])                    # retrievable by QIDO-RS
            assert [x["00080018"]["Value"][0] for x in found] == [r["sop_uid"]]
        assert srv.count() == 5                               # the unselected RTDOSE was not sent
        rtdose = next(r for r in pq.read_table(sel / "selection.parquet").to_pylist() if not r["selected"])
        assert srv.qido(rtdose["sop_uid"]) == []

        # re-push: nothing sent again, nothing duplicated
        s2 = P.push_selection(sel, srv.url)
        assert s2.counts == {"already": 5} and s2.bytes_sent == 0
        assert srv.count() == 5
        assert {r["status"] for r in _table(sel).values()} == {"already"}

        # one instance deleted on the server: the next push restores that one only
        gone = selected[1]
        oid = srv.orthanc_id(gone["sop_uid"])
        # what Orthanc keeps is the selection's file, byte for byte
        assert srv.raw(f"/instances/{oid}/file") == (sel / "dicom" / f"{gone['image_id']}.dcm").read_bytes()
        srv.raw(f"/instances/{oid}", method="DELETE")
        assert srv.count() == 4
        s3 = P.push_selection(sel, srv.url)
        assert s3.counts == {"already": 4, "stored": 1}
        assert _table(sel)[gone["image_id"]]["status"] == "stored"
        assert srv.count() == 5
    assert not list(sel.glob(".*"))        # no temporary file left beside push.parquet


MR_FILTER = """
function ReceivedInstanceFilter(dicom, origin, info)
  return dicom.Modality ~= 'MR'
end
"""


@needs_orthanc
def test_instances_the_server_refuses_are_failed_with_a_reason(anon, tmp_path):
    """Orthanc with a ReceivedInstanceFilter dropping MR: its DICOMweb plugin still lists the
    MR among the stored instances in the STOW-RS answer, so only the QIDO-RS check after the
    store tells the truth."""
    sel, selected = make_selection(anon, tmp_path / "sel")
    with orthanc(tmp_path / "orthanc", lua=MR_FILTER) as srv:
        s = P.push_selection(sel, srv.url, batch_size=10)
        t = _table(sel)
        mr = {r["image_id"] for r in selected if r["modality"] == "MR"}
        assert len(mr) == 2
        assert s.counts == {"stored": 3, "failed": 2}
        for r in selected:
            row = t[r["image_id"]]
            if r["image_id"] in mr:
                assert row["status"] == "failed" and row["reason"] == P.R_NOT_LISTED
                assert srv.qido(r["sop_uid"]) == []
            else:
                assert row["status"] == "stored" and len(srv.qido(r["sop_uid"])) == 1
        assert srv.count() == 3


@needs_orthanc
def test_server_stopped_mid_run_loses_nothing(anon, tmp_path):
    sel, selected = make_selection(anon, tmp_path / "sel")
    with orthanc(tmp_path / "orthanc") as srv:
        def stop_after_first(done, total):
            if done == 1:
                srv.stop()
        s = P.push_selection(sel, srv.url, batch_size=1, timeout=10, progress=stop_after_first)
    t = _table(sel)
    assert set(t) == {r["image_id"] for r in selected}      # every selected file has its row
    order = [r["image_id"] for r in selected]
    assert t[order[0]]["status"] == "stored"
    assert t[order[1]]["status"] == "failed" and t[order[1]]["reason"] in (P.R_REFUSED, P.R_NETWORK)
    assert all(t[i]["status"] == "failed" and t[i]["reason"] == P.R_EARLIER and t[i]["http_status"] is None
               for i in order[2:])
    assert s.counts == {"stored": 1, "failed": 4}


def test_unreachable_server_every_file_failed_exit_1(anon, tmp_path):
    sel, selected = make_selection(anon, tmp_path / "sel")
    port = _free_port()            # nothing listens there
    p = run_cli("push", sel, "--dicomweb", f"http://127.0.0.1:{port}/dicom-web", "--batch", "2", check=False)
    assert p.returncode == 1, p.stderr
    t = _table(sel)
    assert set(t) == {r["image_id"] for r in selected}
    first = [r["image_id"] for r in selected[:2]]
    assert all(t[i]["reason"] == P.R_REFUSED for i in first)
    assert all(t[i]["reason"] == P.R_EARLIER for i in t if i not in first)
    assert {r["status"] for r in t.values()} == {"failed"}
    assert "5 of 5 selected files are not on the server" in p.stderr.replace("\n", " ")
    assert P.R_REFUSED in p.stdout
    _assert_no_ids(p, selected)


def test_silent_server_times_out_once(anon, tmp_path):
    """A server that accepts connections and never answers costs one bounded wait."""
    sel, selected = make_selection(anon, tmp_path / "sel")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/dicom-web"
        summary = P.push_selection(sel, url, batch_size=2, timeout=0.5)
    t = _table(sel)
    assert summary.counts == {"failed": 5} and summary.requests == 1
    reasons = [t[r["image_id"]]["reason"] for r in selected]
    assert reasons == [P.R_TIMEOUT] * 2 + [P.R_EARLIER] * 3


def _assert_no_ids(p, selected) -> None:
    out = p.stdout + p.stderr
    for r in selected:
        for k in ("sop_uid", "study_uid", "patient_id"):
            assert r[k] not in out


@needs_orthanc
def test_credentials_from_the_environment_never_shown(anon, tmp_path):
    sel, selected = make_selection(anon, tmp_path / "sel")
    secret = "Xq7-never-print-me"
    with orthanc(tmp_path / "orthanc", users={"annot": secret}) as srv:
        bad = run_cli("push", sel, "--dicomweb", srv.url, check=False,
                      env={"VINDR_DICOMWEB_USER": "annot", "VINDR_DICOMWEB_PASSWORD": "wrong-" + secret})
        assert bad.returncode == 1
        t = _table(sel)
        assert {(r["status"], r["reason"], r["http_status"]) for r in t.values()} == {("failed", P.R_AUTH, 401)}
        assert srv.count() == 0
        good = run_cli("push", sel, "--dicomweb", srv.url, "--user", "annot", check=False,
                       env={"VINDR_DICOMWEB_PASSWORD": secret})
        assert good.returncode == 0, good.stdout + good.stderr
        assert {r["status"] for r in _table(sel).values()} == {"stored"}
        assert srv.count() == 5
    for p in (bad, good):
        assert secret not in p.stdout + p.stderr and "annot:" not in p.stdout + p.stderr
        _assert_no_ids(p, selected)
    assert secret.encode() not in (sel / "push.parquet").read_bytes()


@needs_orthanc
def test_files_failing_local_checks_are_not_sent(anon, tmp_path):
    sel, selected = make_selection(anon, tmp_path / "sel")
    a, b, c, d, e = (r["image_id"] for r in selected)
    (sel / "dicom" / f"{a}.dcm").unlink()                                          # missing
    (sel / "dicom" / f"{b}.dcm").unlink()
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), sel / "dicom" / f"{b}.dcm")   # not de-identified
    (sel / "dicom" / f"{c}.dcm").unlink()
    shutil.copy(sel / "dicom" / f"{d}.dcm", sel / "dicom" / f"{c}.dcm")            # another image's file
    rows = pq.read_table(sel / "selection.parquet").to_pylist()
    rows.append({**rows[0], "image_id": "../../etc/passwd", "selected": True})     # not an image id
    pq.write_table(pa.Table.from_pylist(rows), sel / "selection.parquet")
    with orthanc(tmp_path / "orthanc") as srv:
        s = P.push_selection(sel, srv.url)
        t = _table(sel)
        assert t[a]["reason"] == P.R_MISSING
        assert t[b]["reason"] == P.R_NOT_DEID
        assert t[c]["reason"] == P.R_SOP
        assert t["../../etc/passwd"]["reason"] == P.R_BAD_ID
        assert t[d]["status"] == t[e]["status"] == "stored"
        assert s.counts == {"stored": 2, "failed": 4}
        assert srv.count() == 2                                # nothing that failed a check was sent
        raw_uid = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False), stop_before_pixels=True).SOPInstanceUID
        assert srv.qido(raw_uid) == []


def test_requests_that_cannot_run(anon, tmp_path):
    sel, _ = make_selection(anon, tmp_path / "sel")
    for url, words in [("ftp://127.0.0.1/dicom-web", "http"), ("http://u:p@127.0.0.1:1/dicom-web", "credentials"),
                       ("http://127.0.0.1:1/dicom-web?x=1", "query")]:
        with pytest.raises(RequestError, match=words):
            P.push_selection(sel, url)
    with pytest.raises(RequestError, match="VINDR_DICOMWEB_PASSWORD"):
        P.push_selection(sel, "http://127.0.0.1:1/dicom-web", user="annot")
    with pytest.raises(RequestError, match="--batch"):
        P.push_selection(sel, "http://127.0.0.1:1/dicom-web", batch_size=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run_cli("push", empty, "--dicomweb", "http://127.0.0.1:1/dicom-web", check=False)
    assert p.returncode == 2 and "run `vindr select` first" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    pq.write_table(pa.table({"image_id": ["x"]}), empty / "selection.parquet")
    with pytest.raises(RequestError, match="lacks the column"):
        P.push_selection(empty, "http://127.0.0.1:1/dicom-web")
    (empty / "selection.parquet").write_bytes(b"not parquet")
    with pytest.raises(RequestError, match="cannot be read"):
        P.push_selection(empty, "http://127.0.0.1:1/dicom-web")
    assert not (sel / "push.parquet").exists()             # refused before anything was written


@needs_orthanc
def test_qido_searches_are_split_into_chunks(anon, tmp_path, monkeypatch):
    sel, selected = make_selection(anon, tmp_path / "sel")
    monkeypatch.setattr(P, "QIDO_CHUNK", 2)
    with orthanc(tmp_path / "orthanc") as srv:
        s = P.push_selection(sel, srv.url, batch_size=5)
        assert s.counts == {"stored": 5}
        assert s.requests == 3 + 1 + 3          # 5 UIDs searched 2 at a time, before and after one STOW-RS
        assert srv.count() == 5
        assert P.push_selection(sel, srv.url, batch_size=5).counts == {"already": 5}


def test_redirects_are_not_followed(anon, tmp_path):
    """A server answering 307 gets every file failed; the place it points to is never asked,
    so the credentials never travel there."""
    import http.server
    import threading

    hits = []

    class Target(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()
        do_POST = do_GET

        def log_message(self, *a):
            pass

    class Redirect(Target):
        def do_GET(self):
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{target.server_address[1]}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        do_POST = do_GET

    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Target)
    redirect = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threads = [threading.Thread(target=x.serve_forever, daemon=True) for x in (target, redirect)]
    for t in threads:
        t.start()
    try:
        sel, selected = make_selection(anon, tmp_path / "sel")
        s = P.push_selection(sel, f"http://127.0.0.1:{redirect.server_address[1]}/dicom-web",
                             user="annot", password="pw", timeout=10)
    finally:
        for x in (target, redirect):
            x.shutdown()
            x.server_close()
    assert s.counts == {"failed": 5}
    assert {(r["reason"], r["http_status"]) for r in _table(sel).values()} == {(P.R_REDIRECT, 307)}
    assert hits == []


def test_stow_answer_failed_sop_sequence_is_read():
    """The Store Instances Response in DICOM JSON (PS3.18 F.2 form): FailedSOPSequence items
    with their FailureReason; any other body gives nothing."""
    answer = {"00081190": {"vr": "UR", "Value": ["http://x/studies/1.2"]},
              "00081198": {"vr": "SQ", "Value": [
                  {"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
                   "00081155": {"vr": "UI", "Value": ["1.2.3.4"]},
                   "00081197": {"vr": "US", "Value": [0xA700]}},
                  {"00081155": {"vr": "UI", "Value": ["1.2.3.5"]}}]},
              "00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3.6"]}}]}}
    got = P.refused_instances(json.dumps(answer).encode())
    assert got == {"1.2.3.4": 0xA700, "1.2.3.5": None}
    assert P.refused_instances(json.dumps([answer]).encode()) == got
    assert P._failure_reason(0xA700) == "server refused the instance (FailedSOPSequence, failure reason 0xA700)"
    for body in (b"", b"<xml/>", b"{", b"[]", b'{"00081198": {"vr": "SQ"}}', b'{"00081198": {"Value": [1, "x"]}}'):
        assert P.refused_instances(body) == {}


@needs_orthanc
def test_a_file_the_server_rejects_gets_its_failure_reason(anon, tmp_path):
    """A de-identified file without StudyInstanceUID: Orthanc refuses it in the STOW-RS answer's
    FailedSOPSequence (failure reason 0xC000, HTTP 400 for the request) and stores the other
    file of the same request."""
    sel, selected = make_selection(anon, tmp_path / "sel")
    bad = sel / "dicom" / f"{selected[0]['image_id']}.dcm"
    ds = pydicom.dcmread(bad)
    bad.unlink()                      # a hard link into the fixture's tree: write a new file
    del ds.StudyInstanceUID
    ds.save_as(bad)
    with orthanc(tmp_path / "orthanc") as srv:
        s = P.push_selection(sel, srv.url, batch_size=2)
        t = _table(sel)
        assert t[selected[0]["image_id"]] == {
            "image_id": selected[0]["image_id"], "sop_uid": selected[0]["sop_uid"], "status": "failed",
            "reason": "server refused the instance (FailedSOPSequence, failure reason 0xC000)", "http_status": 400}
        assert t[selected[1]["image_id"]]["status"] == "stored"       # same request, stored
        assert s.counts == {"stored": 4, "failed": 1} and srv.count() == 4
        assert srv.qido(selected[0]["sop_uid"]) == []
    assert pq.read_schema(sel / "push.parquet").equals(arrow_schema("push"))
