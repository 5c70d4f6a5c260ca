"""Privacy bench: vindr anonymize vs dicognito vs gdcmanon on an adversarial export.

The export (bench/privacy_corpus.py: ~48 real public DICOM files, 9 fake patients, PHI in
~40 kinds of places) goes through each tool; an INDEPENDENT checker (nothing from vindr's
audit or terms code) then reads every output tree and counts, per tool:

  files written      DICOM files in the output tree
  leak locations     (file, location) pairs where a planted PHI string is found, accent-folded
                     and case-insensitive (ideographic names as raw bytes in UTF-8, ISO 2022,
                     EUC-KR, GB18030), in any byte outside the pixel data value: the location
                     is the element path as pydicom parses it, "bytes" (found in the raw bytes
                     but in no parsed element, e.g. a preamble) or "path" (file or folder name)
  files leaking      output files with at least one leak location
  X attributes       elements whose PS3.15 Table E.1-1 basic action is X, any depth; rows
                     that Retain Patient Characteristics keeps (sex/age/size/weight, as VinDr
                     did) or Retain Longitudinal Temporal Information with Modified Dates
                     cleans (shifted dates, what vindr and dicognito do) are not counted
  private tags       elements of odd groups, any depth
  new dciodvfy errs  dciodvfy error lines of an output that its input did not have (values
                     normalised away); outputs are matched to inputs by pixel data hash
  inconsistencies    one true patient with >1 output PatientID, one output PatientID with >1
                     true patient, a patient whose studies' date offsets differ (intervals
                     between the patient's studies not preserved)

Nothing the checker prints or writes names a PHI value or an output path of a peer (they keep
input paths); the truth lives in WORKDIR/truth.json only.

    python bench/privacy_bench.py [--pydicom-data WHEEL] [--workdir bench/out/privacy] [--skip TOOL ...]
Results: bench/results/privacy.json (figures copied by hand into bench/README.md).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import unicodedata
import warnings
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from privacy_corpus import build  # noqa: E402
from anonymize_bench import certificate  # noqa: E402  (one throw-away gdcmanon certificate for both benches)

console = Console()
E1 = ROOT / "schemas" / "deid" / "ps3.15-table-e1-1.json"
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}


# ---------------------------------------------------------------- matching (independent of vindr)

def fold(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D").replace("ß", "ss")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()


def norm(text: str) -> str:
    """' tok tok ' : accent-folded lower-case alphanumeric tokens, one space between."""
    return " " + " ".join(re.findall(r"[0-9a-z]+", fold(text))) + " "


def _iso2022_inner(text: str, codec: str) -> bytes | None:
    try:
        b = text.encode(codec)
    except (UnicodeEncodeError, LookupError):
        return None
    return re.sub(rb"\x1b[\$\(\)][@-Z]?[@-Z]?", b"", b).replace(b"\x0e", b"").replace(b"\x0f", b"") or None


@dataclass
class Needle:
    kind: str
    patient: str
    token: str | None = None            # norm() form, matched on token boundaries
    digits: str | None = None           # >= 8 digits (dates): matched anywhere in the token stream
    exact: str | None = None            # matched as is (UIDs, ideographic text)
    raw: list[bytes] = field(default_factory=list)   # byte spellings (ideographic text)


def needles(truth: dict) -> list[Needle]:
    out = []
    for n in truth["needles"]:
        t, kind = n["text"], n["kind"]
        nd = Needle(kind, n["patient"])
        if kind == "study-uid":
            nd.exact, nd.raw = t, [t.encode()]
        elif kind == "name-ideographic":
            nd.exact = t
            for codec in ("utf-8", "gb18030", "euc_kr", "euc_jp"):
                try:
                    nd.raw.append(t.encode(codec))
                except UnicodeEncodeError:
                    pass
            for codec in ("iso2022_jp", "iso2022_kr"):
                b = _iso2022_inner(t, codec)
                if b:
                    nd.raw.append(b)
            nd.raw = [b for b in dict.fromkeys(nd.raw) if len(b) >= 3]
        elif t.isdigit() and len(t) >= 8:
            nd.digits = t
        else:
            nd.token = norm(t)
        out.append(nd)
    return out


class Matcher:
    def __init__(self, ns: list[Needle]):
        self.ns = ns

    def in_text(self, text: str) -> set[int]:
        if not text:
            return set()
        n = norm(text)
        joined = n.replace(" ", "")
        hits = set()
        for i, nd in enumerate(self.ns):
            if nd.token and nd.token in n:
                hits.add(i)
            elif nd.digits and nd.digits in joined:
                hits.add(i)
            elif nd.exact and nd.exact in text:
                hits.add(i)
        return hits

    def in_bytes(self, data: bytes) -> set[int]:
        if not data:
            return set()
        hits = self.in_text(data.decode("utf-8", "ignore")) | self.in_text(data.decode("latin-1"))
        for i, nd in enumerate(self.ns):
            if i not in hits and any(b in data for b in nd.raw):
                hits.add(i)
        return hits


# ---------------------------------------------------------------- reading outputs

def read(path: Path) -> Dataset | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
        ds.file_meta  # noqa: B018
        if len(ds) == 0:
            return None
        for _ in ds:       # force every element to be read now
            pass
        return ds
    except Exception:      # noqa: BLE001  anything pydicom cannot read is counted as bytes only
        return None


def _value_views(elem) -> tuple[list[str], list[bytes]]:
    v = elem.value
    if v is None:
        return [], []
    if isinstance(v, (bytes, bytearray)):
        return [], [bytes(v)]
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        return ["\\".join(str(x) for x in v)], []
    return [str(v)], []


def walk(ds: Dataset, prefix: str = ""):
    """(path, element) for every element at any depth; sequences are descended into."""
    for elem in ds:
        name = elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"
        here = f"{prefix}{name}"
        yield here, elem
        if elem.VR == "SQ" and isinstance(elem.value, (Sequence, list)):
            for i, item in enumerate(elem.value):
                if isinstance(item, Dataset):
                    yield from walk(item, f"{here}[{i}].")


def header_bytes(path: Path, ds: Dataset | None) -> bytes:
    """Every byte of the file but the pixel data value; a deflated data set inflated first."""
    data = path.read_bytes()
    if ds is None:
        return data
    ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if ts in ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"):
        start = data.find(b"DICM")
        meta_len = int.from_bytes(data[start + 12:start + 16], "little") if start >= 0 else 0
        body = start + 16 + meta_len
        try:
            d = zlib.decompressobj(-15)
            data = data[:body] + d.decompress(data[body:], 1 << 30) + d.unused_data
        except zlib.error:
            pass
    for tag in PIXEL_TAGS:
        if tag in ds:
            pv = ds[tag].value
            if isinstance(pv, (bytes, bytearray)) and len(pv) > 64:
                at = data.find(bytes(pv))
                if at >= 0:
                    data = data[:at] + data[at + len(pv):]
    return data


def pixel_key(ds: Dataset | None) -> str | None:
    if ds is None or "PixelData" not in ds:
        return None
    return hashlib.sha256(bytes(ds.PixelData)).hexdigest()


def swapped_key(ds: Dataset) -> str | None:
    b = bytes(ds.PixelData)
    if len(b) % 2:
        return None
    sw = bytearray(len(b))
    sw[0::2], sw[1::2] = b[1::2], b[0::2]
    return hashlib.sha256(bytes(sw)).hexdigest()


def x_tags() -> tuple[set[int], list[tuple[int, int]]]:
    """Tags whose basic action is X (not kept by Retain Patient Characteristics), and masked
    repeating-group rows as (mask, value)."""
    rows = json.loads(E1.read_text())["rows"]
    plain, masked = set(), []
    for r in rows:
        opts = r.get("options", {})
        if r.get("basic") != "X" or opts.get("retain_patient_characteristics") == "K" \
                or opts.get("retain_modified_dates") == "C":
            continue
        t = r["tag"].lower()
        if not re.fullmatch(r"[0-9a-fx]{8}", t):
            continue
        if "x" in t:
            mask = int("".join("0" if c == "x" else "f" for c in t), 16)
            masked.append((mask, int(t.replace("x", "0"), 16)))
        else:
            plain.add(int(t, 16))
    return plain, masked


# ---------------------------------------------------------------- dciodvfy

def dciodvfy_errors(path: Path) -> set[str] | None:
    """dciodvfy's error lines, values normalised away. dciodvfy cannot read a deflated data
    set (it parses the compressed bytes as tags), so such a file is checked as the same data
    set re-encoded explicit VR little endian (in a temporary copy)."""
    if not shutil.which("dciodvfy"):
        return None
    ds = read(path)
    if ds is not None and str(ds.file_meta.get("TransferSyntaxUID", "")) == "1.2.840.10008.1.2.1.99":
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / "inflated.dcm"
            ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.save_as(plain, enforce_file_format=False)
            return _dciodvfy(plain, path)
    return _dciodvfy(path, path)


def _dciodvfy(path: Path, shown: Path) -> set[str]:
    p = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True)
    out = set()
    for line in (p.stdout + p.stderr).decode("latin-1").splitlines():
        if "Error -" not in line:
            continue
        line = line.replace(str(path), "FILE")
        line = re.sub(r"= '.*?' \(0x[0-9a-f]+\)", "= ?", line)   # the offending character
        line = re.sub(r"(= |term |VL = |should be )<[^>]*>", r"\1<>", line)   # values; element paths stay
        line = re.sub(r"\[\d+\]", "[]", line)
        out.add(line.strip())
    return out


# ---------------------------------------------------------------- one output tree

def check_tree(out: Path, truth: dict, inputs: dict, matcher: Matcher, xt) -> dict:
    """Every measure for one output tree (inputs: input path -> its dciodvfy error set)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _check_tree(out, truth, inputs, matcher, xt)


def _check_tree(out: Path, truth: dict, inputs: dict, matcher: Matcher, xt) -> dict:
    plain_x, masked_x = xt
    loc_count: Counter = Counter()
    leak_pairs: set[tuple[int, str]] = set()
    files_leaking: set[int] = set()
    written = x_attrs = private = new_err = 0
    needle_kinds: Counter = Counter()
    new_err_msgs: Counter = Counter()
    mapped = []          # (input record, output ds)
    unmatched = 0
    by_pixel = {f["pixel_sha256"]: f for f in truth["files"] if f["pixel_sha256"]}
    no_pixel = {f["sop_class"]: f for f in truth["files"] if not f["pixel_sha256"]}
    for idx, p in enumerate(sorted(x for x in out.rglob("*"))):
        if not p.is_file():
            continue
        rel = p.relative_to(out).as_posix()
        hits = matcher.in_text(rel.replace("/", " / "))
        if hits:                                   # a file or folder name on the way to this file
            leak_pairs.add((idx, "path"))
            needle_kinds.update(matcher.ns[h].kind for h in hits)
        ds = read(p)
        is_dicom = ds is not None and ("SOPClassUID" in ds or "PixelData" in ds)
        found_in_elements: set[int] = set()
        if is_dicom:
            written += 1
            for part in (ds.file_meta, ds):
                for path_, elem in walk(part):
                    if elem.tag in PIXEL_TAGS:
                        continue
                    if elem.tag.group % 2 == 1:
                        private += 1
                    if elem.tag in plain_x or any((elem.tag & m) == v for m, v in masked_x):
                        x_attrs += 1
                    if elem.VR == "SQ":
                        continue
                    texts, blobs = _value_views(elem)
                    h = set()
                    for t in texts:
                        h |= matcher.in_text(t)
                    for b in blobs:
                        h |= matcher.in_bytes(b)
                    if h:
                        loc = re.sub(r"\[\d+\]", "[]", path_)
                        leak_pairs.add((idx, loc))
                        found_in_elements |= h
                        needle_kinds.update(matcher.ns[i].kind for i in h)
        raw = header_bytes(p, ds if is_dicom else None)
        extra = matcher.in_bytes(raw) - found_in_elements
        if extra:
            leak_pairs.add((idx, "bytes" if is_dicom else f"bytes of a non-DICOM file ({p.suffix or 'no suffix'})"))
            needle_kinds.update(matcher.ns[i].kind for i in extra)
        if any(i == idx for i, _ in leak_pairs):
            files_leaking.add(idx)
        if is_dicom:
            src = by_pixel.get(pixel_key(ds)) if "PixelData" in ds else no_pixel.get(str(ds.get("SOPClassUID", "")))
            if src is None and "PixelData" in ds:
                src = by_pixel.get(swapped_key(ds))
            if src is None:
                unmatched += 1
                continue
            mapped.append((src, ds))
            errs = dciodvfy_errors(p)
            if errs is not None:
                before = inputs[src["path"]]
                fresh = errs - before
                new_err += len(fresh)
                new_err_msgs.update(fresh)
    for _, loc in leak_pairs:
        loc_count[loc] += 1
    return {"files_written": written, "leak_locations": len(leak_pairs), "files_leaking": len(files_leaking),
            "x_attributes": x_attrs, "private_tags": private,
            "new_dciodvfy_errors": new_err if shutil.which("dciodvfy") else None,     # None: not installed
            "unmatched_outputs": unmatched, **inconsistencies(mapped),
            "locations": dict(loc_count.most_common()), "needle_kinds": dict(needle_kinds.most_common()),
            "new_dciodvfy_error_kinds": dict(new_err_msgs.most_common(40))}


def _day(s) -> date | None:
    s = str(s or "")[:8]
    try:
        return date(int(s[:4]), int(s[4:6]), int(s[6:8])) if len(s) == 8 and s.isdigit() else None
    except ValueError:
        return None


def _seconds(s) -> int | None:
    s = str(s or "").split(".")[0]
    if len(s) < 4 or not s.isdigit() or len(s) > 6:
        return None
    s = s.ljust(6, "0")
    return int(s[:2]) * 3600 + int(s[2:4]) * 60 + int(s[4:6])


def inconsistencies(mapped: list) -> dict:
    """An output without PatientID is not an inconsistency (the grouping is gone, not wrong):
    it is counted apart. Offsets are output minus input StudyDate (+ StudyTime when both
    have one, so that a tool shifting by hours is not blamed for crossing midnight); a
    patient's intervals are broken when two of its offsets differ by more than a day."""
    pid_of = defaultdict(set)      # true patient -> output PatientIDs
    pat_of = defaultdict(set)      # output PatientID -> true patients
    offsets = defaultdict(set)     # true patient -> {output - input, seconds}
    no_id = 0
    for src, ds in mapped:
        out_id = str(ds.get("PatientID", "") or "").strip()
        if out_id:
            pid_of[src["patient"]].add(out_id)
            pat_of[out_id].add(src["patient"])
        else:
            no_id += 1
        d_in, d_out = _day(src["study_date"]), _day(ds.get("StudyDate"))
        if d_in and d_out:
            off = (d_out - d_in).days * 86400
            t_in, t_out = _seconds(src.get("study_time")), _seconds(ds.get("StudyTime"))
            if t_in is not None and t_out is not None:
                off += t_out - t_in
            offsets[src["patient"]].add(off)
    split = sum(len(v) - 1 for v in pid_of.values())
    merged = sum(len(v) - 1 for v in pat_of.values())
    # a day of slack: a file without StudyTime next to one with it may differ by a shift's hours
    intervals = sum(1 for v in offsets.values() if max(v) - min(v) > 86400)
    return {"inconsistencies": split + merged + intervals, "patients_split": split, "patients_merged": merged,
            "patients_with_broken_intervals": intervals, "outputs_without_patient_id": no_id,
            "mapped_outputs": len(mapped)}


# ---------------------------------------------------------------- tools

def tools(corpus: Path, work: Path, workers: int) -> dict[str, list[str]]:
    keydir = work / "keys"
    keydir.mkdir(mode=0o700, exist_ok=True)
    vkey = keydir / "vindr.key"
    # --burned-in off: this bench measures the header (pixels are bench/burned_in_bench.py's), and
    # its checker matches an output to its input by the pixel data's hash, which redaction changes
    vindr = [sys.executable, "-m", "vindr_cli", "anonymize", str(corpus)]
    t = {
        "vindr (basic)": [*vindr, str(work / "out_vindr_basic"), "--key", str(vkey), "-j", str(workers)],
        "vindr (--profile vindr)": [*vindr, str(work / "out_vindr_vindr"), "--key", str(vkey), "-j", str(workers),
                                    "--profile", "vindr"],
        "vindr (basic, --allow-burned-in)": [*vindr, str(work / "out_vindr_allow"), "--key", str(vkey), "-j",
                                             str(workers), "--allow-burned-in"],
        "dicognito": [sys.executable, "-m", "dicognito", "-o", str(work / "out_dicognito"), "--quiet",
                      "--seed", "7", str(corpus)],
    }
    for name in [n for n in t if n.startswith("vindr")]:
        t[name] += ["--burned-in", "off"]
    if shutil.which("gdcmanon") and shutil.which("openssl"):
        # gdcmanon -r stops at the first file it cannot de-identify (--continue only skips
        # non-DICOM files), so it is run once per file, into the same relative path -r uses
        gkey, gcert = certificate(work)
        t["gdcmanon"] = [sys.executable, "-c", GDCMANON_EACH, str(corpus), str(work / "out_gdcmanon"), str(gkey),
                         str(gcert)]
    return t


GDCMANON_EACH = """
import subprocess, sys
from pathlib import Path
src, dst, key, cert = map(Path, sys.argv[1:5])
bad = 0
for f in sorted(p for p in src.rglob('*') if p.is_file()):
    o = dst / f.relative_to(src)
    o.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(['gdcmanon', '-e', '-i', str(f), '-o', str(o), '-k', str(key), '-c', str(cert)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bad += r.returncode != 0
sys.exit(1 if bad else 0)
"""


def out_dir(cmd: list[str]) -> Path:
    for i, a in enumerate(cmd):
        if a in ("-o",):
            return Path(cmd[i + 1])
    if cmd[1] == "-c":
        return Path(cmd[4])  # gdcmanon, one file at a time
    return Path(cmd[5])     # vindr: anonymize INPUT OUTPUT


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pydicom-data", type=Path, help="pydicom-data wheel (pip download pydicom-data --no-deps)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "privacy")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[])
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "privacy.json")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    work = a.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    truth = build(work, a.pydicom_data)
    corpus = work / "corpus"
    console.print(f"corpus: {len(truth['files'])} files, {len({f['patient'] for f in truth['files']})} patients, "
                  f"{len(truth['kinds'])} kinds of places, {len(truth['needles'])} planted strings")
    inputs = {f["path"]: (dciodvfy_errors(corpus / f["path"]) or set()) for f in truth["files"]}
    matcher = Matcher(needles(truth))
    xt = x_tags()
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    results = {}
    for name, cmd in tools(corpus, work, a.workers).items():
        if name in a.skip:
            continue
        out = out_dir(cmd)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, env=env, cwd=work)
        wall = time.perf_counter() - t0
        r = check_tree(out, truth, inputs, matcher, xt) if out.exists() else {"files_written": 0}
        r.update(exit_code=p.returncode, wall_s=round(wall, 2))
        if (out / "manifest.parquet").exists():     # vindr: why inputs were not written (fixed reasons)
            import pyarrow.parquet as pq
            rows = pq.read_table(out / "manifest.parquet").to_pylist()
            r["vindr_statuses"] = dict(Counter(f"{x['status']}: {x['reason']}" if x["reason"] else x["status"]
                                               for x in rows))
        results[name] = r
        console.print(f"{name}: exit {p.returncode}, {wall:.1f} s")

    t = Table(title=f"privacy bench: {len(truth['files'])} inputs, {len({f['patient'] for f in truth['files']})} patients")
    cols = ["tool", "files written", "leak locations", "files leaking", "leaking / written", "X attributes",
            "private tags", "new dciodvfy errors", "inconsistencies", "wall s"]
    for c in cols:
        t.add_column(c, justify="left" if c == "tool" else "right")
    for name, r in results.items():
        w = r.get("files_written", 0)
        t.add_row(name, str(w), str(r.get("leak_locations", "-")), str(r.get("files_leaking", "-")),
                  f"{r['files_leaking'] / w:.2f}" if w else "-", str(r.get("x_attributes", "-")),
                  str(r.get("private_tags", "-")), "-" if r.get("new_dciodvfy_errors") is None else str(r["new_dciodvfy_errors"]),
                  f"{r.get('inconsistencies', '-')} ({r.get('patients_split', 0)}/{r.get('patients_merged', 0)}/"
                  f"{r.get('patients_with_broken_intervals', 0)})", f"{r['wall_s']:.1f}")
    console.print(t)
    console.print("inconsistencies: (patients split / patients merged / patients with broken date intervals)")
    base = results.get("vindr (basic)", {}).get("leak_locations")
    if base:
        for name, r in results.items():
            if name != "vindr (basic)" and r.get("leak_locations") is not None:
                console.print(f"leak locations {name} / vindr (basic): {r['leak_locations'] / base:.1f}")
    for name, r in results.items():
        locs = r.get("locations", {})
        if locs:
            console.print(f"[bold]{name}[/] leak locations by element: " +
                          ", ".join(f"{k} {v}" for k, v in list(locs.items())[:25]))
    rec = {"date": time.strftime("%Y-%m-%d"), "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
           "platform": platform.platform(), "pydicom": pydicom.__version__},
           "corpus": {"files": len(truth["files"]), "patients": len({f["patient"] for f in truth["files"]}),
                      "kinds_of_places": truth["kinds"], "planted_strings": len(truth["needles"]),
                      "pydicom_data": truth["pydicom_data"], "skipped_sources": truth["skipped_sources"],
                      "transfer_syntaxes": dict(Counter(f["transfer_syntax"] for f in truth["files"])),
                      "sop_classes": dict(Counter(f["sop_class"] for f in truth["files"]))},
           "results": results}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(rec, indent=1) + "\n")
    console.print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
