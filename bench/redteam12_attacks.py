"""red team 12 attacks: each a sequence of runs on one OUTPUT, compared with a fresh run."""
import json, os, shutil, subprocess, sys, tempfile, time, zipfile, signal
sys.path.insert(0, "tests")
from pathlib import Path
import pydicom
from helpers import key_file_in
from test_mends import _run
from test_redteam8 import _study_file
from test_studyterms import _file
from test_redteam12 import _outputs, _lut_alone, OTHER
from vindr_cli.errors import RequestError
NAME = "TRANVANBINH".encode("utf-16-le")
S = "1.2.826.0.1.3680043.10.543.1"
res = {}

def lut_has(out):
    o = _outputs(out)
    p = o.get("lut.dcm") or next((v for k, v in o.items() if k.endswith("lut.dcm")), None)
    return None if p is None or not p.exists() else NAME in p.read_bytes()

def any_has(out):
    return sorted(k for k, p in _outputs(out).items() if p.exists() and NAME in p.read_bytes())

def case(name, setup, mutate, src_of=lambda d: d / "export"):
    d = Path(tempfile.mkdtemp(prefix="rt12_"))
    key = key_file_in(d); src, out = d / "export", d / "anon"
    setup(src)
    _run(src, out, key)
    extra = None
    try:
        extra = mutate(d, src, out, key)
        got = _run(src_of(d), out, key)
        resumed = (got.first_pass, got.headers_read, any_has(out))
    except RequestError as e:
        resumed = ("refused", str(e)[:120])
    _run(src_of(d), d / "fresh", key)
    fresh = any_has(d / "fresh")
    leak = isinstance(resumed[2] if len(resumed) == 3 else None, list) and set(resumed[2]) - set(fresh)
    res[name] = {"resume": list(resumed) if not isinstance(resumed[1], str) or resumed[0] != "refused" else resumed,
                 "fresh_with_name": fresh, "leak": bool(leak), "note": extra if not isinstance(resumed[1], str) or resumed[0] != "refused" else None}
    print(name, res[name], flush=True)
    shutil.rmtree(d)

def named_other_study(src):
    _lut_alone(src)
    _file(src, "plain", OTHER.replace("99", "98"), 3, pid="BN7777777", ReferringPhysicianName="TRAN^VAN^BINH")

def restamp(p, edit):
    st = os.stat(p); data = p.read_bytes(); new = edit(data); assert len(new) == len(data)
    with open(p, "r+b") as f: f.write(new)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))

OTHER98 = OTHER.replace("99", "98").encode()
# 1 StudyInstanceUID + PatientID edited in place, mtime restored: plain joins lut's study/patient
def m1(d, src, out, key):
    restamp(src / "plain.dcm", lambda b: b.replace(OTHER98 + b"\0", S.encode() + b"\0\0").replace(b"BN7777777", b"BN5512345"))
    ds = pydicom.dcmread(src / "plain.dcm"); assert ds.StudyInstanceUID == S and ds.PatientID == "BN5512345"
case("move_between_studies_in_place_touch_r", named_other_study, m1)
# 2 rename of a named file into lut's study dir (key changes) after content edit elsewhere
def m2(d, src, out, key):
    p = d / "x"; p.mkdir(); _study_file(p, "plain", 3, ReferringPhysicianName="TRAN^VAN^BINH")
    os.rename(p / "plain.dcm", src / "newcomer.dcm")
case("newcomer_renamed_in", _lut_alone, m2)
# 3 hard link of a study-mate naming him added under a new name; then the original edited in place
def m3(d, src, out, key):
    _study_file(src, "plain", 3, ReferringPhysicianName="NGUYEN^VAN^AN")
    _run(src, out, key)
    os.link(src / "plain.dcm", src / "plain_link.dcm")
    _run(src, out, key)
    restamp(src / "plain.dcm", lambda b: b.replace(b"NGUYEN^VAN^AN", b"TRAN^VAN^BINH"))
case("hard_link_then_edit_in_place", _lut_alone, m3)
# 4 symlink retargeted from a file naming no one to a study-mate naming him
def s4(src):
    _lut_alone(src)
    t = src.parent / "targets"; _study_file(t, "a", 3, ReferringPhysicianName="NGUYEN^VAN^AN")
    _study_file(t, "b", 3, ReferringPhysicianName="TRAN^VAN^BINH")
    os.symlink(t / "a.dcm", src / "link.dcm")
def m4(d, src, out, key):
    os.unlink(src / "link.dcm"); os.symlink(d / "targets" / "b.dcm", src / "link.dcm")
case("symlink_retargeted", s4, m4)
# 5 zip member replaced (zip rewritten, mtime restored)
def s5(src):
    _lut_alone(src)
    t = src.parent / "z"; _study_file(t, "m", 3, ReferringPhysicianName="NGUYEN^VAN^AN")
    with zipfile.ZipFile(src / "bundle.zip", "w") as z: z.write(t / "m.dcm", "m.dcm")
def m5(d, src, out, key):
    t = d / "z"; restamp(t / "m.dcm", lambda b: b.replace(b"NGUYEN^VAN^AN", b"TRAN^VAN^BINH"))
    st = os.stat(src / "bundle.zip")
    with zipfile.ZipFile(src / "bundle.zip", "w") as z: z.write(t / "m.dcm", "m.dcm")
    os.utime(src / "bundle.zip", ns=(st.st_atime_ns, st.st_mtime_ns))
case("zip_member_changed_mtime_restored", s5, m5)
# 6 same OUTPUT, another INPUT path holding the same tree plus a newcomer
def m6(d, src, out, key):
    shutil.copytree(src, d / "export2", copy_function=os.link)
    _study_file(d / "export2", "plain", 3, ReferringPhysicianName="TRAN^VAN^BINH")
case("same_output_other_input_hardlinked_tree", _lut_alone, m6, src_of=lambda d: d / "export2")
# 7 --patient-match changed between runs (passed to the resume only): see the tool's refusal
def m7(d, src, out, key):
    _study_file(src, "plain", 3, ReferringPhysicianName="TRAN^VAN^BINH")
    _run(src, out, key, patient_match="strict")
case("patient_match_changed", _lut_alone, m7)
# 8 record saved, an output rewritten with --no-study-terms, record put back
def m8(d, src, out, key):
    from vindr_cli.deid import unchanged
    _study_file(src, "plain", 3, ReferringPhysicianName="TRAN^VAN^BINH")
    _run(src, out, key)
    saved = (out / ".vindr" / unchanged.FILE).read_bytes()
    _outputs(out)["lut.dcm"].unlink()
    _run(src, out, key, study_terms=False)
    (out / ".vindr" / unchanged.FILE).write_bytes(saved)
case("record_replayed_after_no_study_terms_rewrite", _lut_alone, m8)
# 9 a run SIGKILLed mid-way (subprocess CLI), then the newcomer; resume
def m9(d, src, out, key):
    for i in range(30):
        _file(src, f"pad{i:02d}", f"{OTHER}.{i}", 100 + i, pid=f"BN{8000000 + i}")
    _study_file(src, "plain", 3, ReferringPhysicianName="TRAN^VAN^BINH")
    env = dict(os.environ)
    p = subprocess.Popen([sys.executable, "-m", "vindr_cli", "anonymize", str(src), str(out), "--key", str(key),
                          "--linkage", str(out.parent / "anon.linkage.parquet"), "-j", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    journal = out / ".vindr" / "anonymize.journal.jsonl"     # killed once 5 rows are journaled
    while p.poll() is None and not (journal.exists() and journal.read_bytes().count(b"\n") >= 5):
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    from vindr_cli.deid import unchanged
    return {"record_after_kill": (out / ".vindr" / unchanged.FILE).exists(), "rc": p.returncode,
            "journal_lines": journal.read_bytes().count(b"\n") if journal.exists() else None}
case("sigkill_mid_run_then_resume", _lut_alone, m9)
json.dump(res, open(sys.argv[1], "w"), indent=1, sort_keys=True)
