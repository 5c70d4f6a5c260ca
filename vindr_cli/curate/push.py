"""`vindr push SELECTION --dicomweb URL`: store the selected images in a PACS by STOW-RS.

The annotators' tool sits on a PACS (VinDr's labelling platform did), so the selection is
handed over as DICOM instances over DICOMweb (PS3.18): STOW-RS to store, QIDO-RS to check.

For each batch of selected rows (``SELECTION/selection.parquet``, ``selected`` true):

1. **Local checks** (nothing leaves the machine unless they pass): the file
   ``SELECTION/dicom/<image_id>.dcm`` exists, is neither a symbolic link nor reached through
   one (select makes hard links or copies only), is a DICOM file, is marked
   ``PatientIdentityRemoved YES`` (a file vindr anonymize did not write is never sent) and
   carries the row's SOPInstanceUID.
2. **Already there?** One QIDO-RS search (``URL/instances?SOPInstanceUID=a,b,...``, UID list
   matching) — an instance the server lists is ``already`` and not sent again, so a re-push
   stores nothing twice.
3. **Store**: one ``POST URL/studies`` (``multipart/related; type="application/dicom"``).
   The response's FailedSOPSequence (0008,1198) gives a per-file FailureReason.
4. **Verify**: the same QIDO-RS search again. Only an instance the server now lists is
   ``stored``: a server may acknowledge an instance it then drops (Orthanc's DICOMweb plugin
   lists an instance refused by a ``ReceivedInstanceFilter`` among the stored ones).

A server that cannot be reached (connection refused, no answer within ``timeout`` seconds)
fails the batch being sent, and every later batch is failed without being tried, so a dead
server costs one timeout, not one per batch. Every selected row gets a row in
``SELECTION/push.parquet`` (written atomically, schema ``schemas/tables/push.json``), nothing
is lost, and the caller exits 1 when any row failed. Reasons are fixed lines; nothing the
server says (which may echo header values) is ever shown or stored, only HTTP status codes
and DICOM failure codes. Credentials go in an ``Authorization: Basic`` header, never in the
URL, the table or a message; redirects are not followed (they would carry that header to
another host).
"""
from __future__ import annotations

import base64
import http.client
import io
import json
import re
import secrets
import socket
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from vindr_cli.errors import RequestError
from vindr_cli.runner.faults import named_faults
from vindr_cli.tables import write_table

TABLE = "push"
PASSWORD_ENV = "VINDR_DICOMWEB_PASSWORD"
USER_ENV = "VINDR_DICOMWEB_USER"
IMAGE_ID = re.compile(r"[0-9a-f]{32}")
NEEDED = ("image_id", "sop_uid", "selected")
MAX_BATCH_BYTES = 64 << 20          # one STOW-RS request holds at most this much (or one file)
QIDO_CHUNK = 40                     # UIDs per QIDO-RS search: 40 x 64 characters keeps the URL under 3 kB

# fixed reasons (no PHI, no server text)
R_BAD_ID = "image_id is not 32 hex digits"
R_MISSING = "file missing from SELECTION/dicom"
R_LINK = "file in SELECTION/dicom is a link or reached through one (select makes none): not sent"
R_UNREADABLE = "file is not a readable DICOM file"
R_NOT_DEID = "file is not marked de-identified (PatientIdentityRemoved is not YES): not sent"
R_SOP = "file's SOPInstanceUID differs from its selection row: not sent"
R_NO_SOP = "selection row has no sop_uid"
R_REFUSED = "server refused the connection"
R_TIMEOUT = "server did not answer within the timeout"
R_NETWORK = "network error talking to the server"
R_EARLIER = "not sent: the server could not be reached earlier in this run"
R_REDIRECT = "server answered with a redirect: give the final DICOMweb URL"
R_AUTH = "server refused the credentials (HTTP 401/403)"
R_NOT_LISTED = "server accepted the request but does not list the instance afterwards (dropped or filtered by the server)"
R_BAD_ANSWER = "server's QIDO-RS answer is not DICOM JSON"


def _http_reason(status: int) -> str:
    return R_AUTH if status in (401, 403) else f"server answered HTTP {status} and does not list the instance"


def _qido_reason(status: int) -> str:
    if status in (401, 403):
        return R_AUTH
    if 300 <= status < 400:
        return R_REDIRECT
    return R_BAD_ANSWER if status == 200 else f"server answered HTTP {status} to QIDO-RS"


def _failure_reason(code: int | None) -> str:
    if code is None:
        return "server refused the instance (FailedSOPSequence, no failure reason)"
    return f"server refused the instance (FailedSOPSequence, failure reason 0x{code:04X})"


@dataclass
class PushSummary:
    url: str
    table: Path
    total: int = 0
    counts: Counter = field(default_factory=Counter)            # status -> n
    reasons: Counter = field(default_factory=Counter)           # (status, reason) -> n
    bytes_sent: int = 0
    requests: int = 0

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)


class _Unreachable(Exception):
    """The server could not be reached: the reason is a fixed line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):   # noqa: D102
        return None          # the 3xx then surfaces as an HTTPError


def check_url(url: str) -> str:
    """The DICOMweb base URL without a trailing slash; RequestError when it cannot be used."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestError("--dicomweb must be an http:// or https:// URL of the server's DICOMweb root "
                           "(Orthanc: http://HOST:8042/dicom-web)")
    if parts.username is not None or parts.password is not None:
        raise RequestError(f"--dicomweb must not hold credentials: use --user and the {PASSWORD_ENV} environment variable")
    if parts.query or parts.fragment:
        raise RequestError("--dicomweb must not have a query or fragment: give the DICOMweb root")
    return url.rstrip("/")


class _Client:
    """STOW-RS and QIDO-RS over urllib: bounded waits, no redirects, fixed-line failures."""

    def __init__(self, url: str, *, user: str | None, password: str | None, timeout: float):
        self.url, self.timeout = url, timeout
        self.opener = urllib.request.build_opener(_NoRedirect)
        self.auth = None
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode("utf-8")).decode("ascii")
            self.auth = f"Basic {token}"
        self.requests = 0

    def _call(self, req: urllib.request.Request) -> tuple[int, bytes]:
        if self.auth:
            req.add_unredirected_header("Authorization", self.auth)
        self.requests += 1
        try:
            with self.opener.open(req, timeout=self.timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            try:
                body = e.read()
            except (OSError, ValueError):
                body = b""
            finally:
                e.close()
            return e.code, body
        except urllib.error.URLError as e:
            raise _Unreachable(_net_reason(e.reason)) from None
        except (TimeoutError, socket.timeout):
            raise _Unreachable(R_TIMEOUT) from None
        except (OSError, ValueError, http.client.HTTPException) as e:   # reset mid-answer, bad status line
            raise _Unreachable(_net_reason(e)) from None

    def listed(self, sop_uids: list[str]) -> tuple[int, set[str] | None]:
        """(HTTP status, the SOPInstanceUIDs among ``sop_uids`` the server lists — None when an
        answer is not a DICOM JSON list), asking for at most QIDO_CHUNK UIDs at a time (URL length)."""
        found: set[str] = set()
        status = 0
        for i in range(0, len(sop_uids), QIDO_CHUNK):
            status, part = self._listed(sop_uids[i:i + QIDO_CHUNK])
            if part is None:
                return status, None
            found |= part
        return status, found

    def _listed(self, sop_uids: list[str]) -> tuple[int, set[str] | None]:
        q = urllib.parse.urlencode({"SOPInstanceUID": ",".join(sop_uids), "includefield": "00080018"}, safe=",")
        status, body = self._call(urllib.request.Request(f"{self.url}/instances?{q}",
                                                         headers={"Accept": "application/dicom+json"}))
        if status == 204 or (status == 200 and not body.strip()):
            return status, set()
        if status != 200:
            return status, None
        try:
            items = json.loads(body)
        except ValueError:
            return status, None
        if not isinstance(items, list):
            return status, None
        wanted, found = set(sop_uids), set()
        for item in items:
            for uid in _values(item, "00080018"):
                if uid in wanted:
                    found.add(uid)
        return status, found

    def store(self, files: list[bytes]) -> tuple[int, dict[str, int | None]]:
        """POST the files; (HTTP status, {failed SOPInstanceUID: FailureReason or None})."""
        boundary = secrets.token_hex(16)
        parts = []
        for data in files:
            parts += [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii"), data, b"\r\n"]
        parts.append(f"--{boundary}--\r\n".encode("ascii"))
        req = urllib.request.Request(f"{self.url}/studies", data=b"".join(parts), method="POST", headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json"})
        status, body = self._call(req)
        return status, refused_instances(body)


def refused_instances(body: bytes) -> dict[str, int | None]:
    """{ReferencedSOPInstanceUID: FailureReason or None} for every item of the FailedSOPSequence
    (0008,1198) of a STOW-RS answer in DICOM JSON (PS3.18 Store Instances Response Module);
    {} for any other body (XML, HTML, empty, damaged)."""
    failed: dict[str, int | None] = {}
    try:
        answer = json.loads(body) if body.strip() else {}
    except ValueError:
        return failed
    if isinstance(answer, list) and len(answer) == 1:     # some servers wrap the data set in a list
        answer = answer[0]
    if isinstance(answer, dict):
        for item in _values(answer, "00081198"):
            uids = _values(item, "00081155")
            codes = [c for c in _values(item, "00081197") if isinstance(c, int) and not isinstance(c, bool)]
            if uids and isinstance(uids[0], str):
                failed[uids[0]] = codes[0] if codes else None
    return failed


def _values(obj, tag: str) -> list:
    el = obj.get(tag) if isinstance(obj, dict) else None
    v = el.get("Value") if isinstance(el, dict) else None
    return v if isinstance(v, list) else []


def _net_reason(exc) -> str:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return R_TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return R_REFUSED
    return R_NETWORK


def _link_reason(selection: Path, path: Path) -> str | None:
    """R_LINK when SELECTION/dicom/NAME is a symbolic link, or SELECTION/dicom is one (a link
    planted there would send a file from outside the selection); select makes hard links or
    copies only."""
    try:
        real = Path(selection).resolve() / "dicom"
        if path.is_symlink() or (path.exists() and path.resolve().parent != real) or real.is_symlink():
            return R_LINK
    except OSError:
        return R_LINK
    return None


def _check_file(path: Path, sop_uid: str | None) -> str | None:
    """None when the file may be sent (its header read, not its pixels), else a fixed reason."""
    if not sop_uid:
        return R_NO_SOP
    if not path.is_file():
        return R_MISSING
    return _check_header(path, sop_uid)


def _check_header(src: Path | io.BytesIO, sop_uid: str) -> str | None:
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(src, stop_before_pixels=True,
                                 specific_tags=["SOPInstanceUID", "PatientIdentityRemoved"])
            removed = str(ds.get("PatientIdentityRemoved", "") or "").strip().upper()
            uid = str(ds.get("SOPInstanceUID", "") or "").strip()
            meta_uid = str(ds.file_meta.get("MediaStorageSOPInstanceUID", "") or "").strip()
    except Exception:      # any parse failure of an untrusted file is one fixed reason
        return R_UNREADABLE
    if removed != "YES":
        return R_NOT_DEID
    if uid != sop_uid or (meta_uid and meta_uid != sop_uid):
        return R_SOP
    return None


def _read_checked(path: Path, sop_uid: str) -> tuple[bytes | None, str | None]:
    """The bytes to send, checked again as read (the file may have changed since the first
    check): (bytes, None) or (None, fixed reason)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None, R_UNREADABLE
    why = _check_header(io.BytesIO(data), sop_uid)
    return (None, why) if why else (data, None)


def _selected_rows(selection: Path) -> list[dict]:
    table_path = selection / "selection.parquet"
    if not selection.is_dir():
        raise RequestError("SELECTION is not a folder: give the folder `vindr select` wrote")
    if not table_path.is_file():
        raise RequestError("SELECTION has no selection.parquet: run `vindr select` first")
    try:
        schema = pq.read_schema(table_path)
        missing = [c for c in NEEDED if c not in schema.names]
        if missing:
            raise RequestError(f"SELECTION/selection.parquet lacks the column(s) {', '.join(missing)}: "
                               "write it again with this version of `vindr select`")
        rows = pq.read_table(table_path, columns=list(NEEDED)).to_pylist()
    except RequestError:
        raise
    except Exception:
        raise RequestError("SELECTION/selection.parquet cannot be read as a Parquet table: "
                           "write it again with `vindr select`") from None
    return [r for r in rows if r["selected"] is True]


def push_selection(
    selection: Path,
    url: str,
    *,
    user: str | None = None,
    password: str | None = None,
    batch_size: int = 20,
    timeout: float = 60.0,
    progress: Callable[[int, int], None] | None = None,
) -> PushSummary:
    """Store every selected image of SELECTION on the DICOMweb server at ``url`` (see the
    module's docstring); write ``SELECTION/push.parquet``. ``progress(done, total)`` is called
    after each batch. Raises RequestError (exit 2) only before anything is sent."""
    base = check_url(url)
    if batch_size < 1:
        raise RequestError("--batch must be at least 1")
    if not timeout > 0:
        raise RequestError("--timeout must be more than 0 seconds")
    if user is not None and password is None:
        raise RequestError(f"--user needs a password in the {PASSWORD_ENV} environment variable")
    rows = _selected_rows(selection)
    client = _Client(base, user=user, password=password, timeout=timeout)
    out: list[dict] = []
    summary = PushSummary(url=base, table=selection / "push.parquet", total=len(rows))
    dead: str | None = None        # set once the server could not be reached

    def record(row: dict, status: str, reason: str | None, http: int | None) -> None:
        out.append({"image_id": row["image_id"], "sop_uid": row.get("sop_uid"), "status": status,
                    "reason": reason if status == "failed" else None, "http_status": http})
        summary.counts[status] += 1
        summary.reasons[(status, reason if status == "failed" else None)] += 1

    for batch in _batches(rows, batch_size):
        ready: list[tuple[dict, Path]] = []
        for row in batch:
            image_id = row.get("image_id")
            if not isinstance(image_id, str) or not IMAGE_ID.fullmatch(image_id):
                record({**row, "image_id": "" if image_id is None else str(image_id)}, "failed", R_BAD_ID, None)
                continue
            path = selection / "dicom" / f"{image_id}.dcm"
            why = _link_reason(selection, path) or _check_file(path, row.get("sop_uid"))
            if why:
                record(row, "failed", why, None)
            elif dead:
                record(row, "failed", R_EARLIER, None)
            else:
                ready.append((row, path))
        if ready:
            decided: set[int] = set()
            try:
                _push_batch(client, ready, lambda row, *a: (decided.add(id(row)), record(row, *a)), summary)
            except _Unreachable as e:
                dead = e.reason
                for row, _ in ready:
                    if id(row) not in decided:
                        record(row, "failed", e.reason, None)
        if progress:
            progress(len(out), len(rows))
    summary.requests = client.requests
    with named_faults(selection):          # a full disk or read-only SELECTION: exit 2, not 3
        write_table(out, TABLE, summary.table)
    return summary


def _batches(rows: list[dict], size: int):
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def _push_batch(client: _Client, ready: list[tuple[dict, Path]], record, summary: PushSummary) -> None:
    """One batch: QIDO-RS (already there?), STOW-RS of the rest in requests of at most
    MAX_BATCH_BYTES (a bigger file goes alone; files are read only when their request is
    built), QIDO-RS again. Raises _Unreachable; ``record`` has then been called for the rows
    decided so far."""
    status, before = client.listed([row["sop_uid"] for row, _ in ready])
    if before is None:
        for row, _ in ready:
            record(row, "failed", _qido_reason(status), status)
        return
    groups: list[list[tuple[dict, Path]]] = [[]]
    size = 0
    for row, path in ready:
        if row["sop_uid"] in before:
            record(row, "already", None, status)
            continue
        try:
            n = path.stat().st_size
        except OSError:
            record(row, "failed", R_MISSING, None)
            continue
        if groups[-1] and size + n > MAX_BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append((row, path))
        size += n
    for group in groups:
        sending: list[tuple[dict, bytes]] = []
        for row, path in group:
            data, why = _read_checked(path, row["sop_uid"])
            if why:
                record(row, "failed", why, None)
            else:
                sending.append((row, data))
        if not sending:
            continue
        http, refused = client.store([d for _, d in sending])
        summary.bytes_sent += sum(len(d) for _, d in sending)
        q_status, after = client.listed([row["sop_uid"] for row, _ in sending])
        for row, _ in sending:
            uid = row["sop_uid"]
            if after is not None and uid in after:
                record(row, "stored", None, http)
            elif uid in refused:
                record(row, "failed", _failure_reason(refused[uid]), http)
            elif 300 <= http < 400:
                record(row, "failed", R_REDIRECT, http)
            elif http >= 400:
                record(row, "failed", _http_reason(http), http)
            elif after is None:
                record(row, "failed", _qido_reason(q_status), q_status)
            else:
                record(row, "failed", R_NOT_LISTED, http)
