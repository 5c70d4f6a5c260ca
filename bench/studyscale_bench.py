"""studyscale: a study of N files, each naming another operator (hostile10's generator), anonymized
by the code at --code (a checkout: main or this branch) with -j 2: CPU (user+sys of the run and its
children), driver peak RSS, the journal's largest size (polled), manifest and peer-set record sizes,
a re-run's wall/CPU, and the SHA-256 of every output and of the manifest's and linkage's rows
(to compare two checkouts).

    python bench/studyscale_bench.py --code /work/main --files 600 --json out.json
"""
from __future__ import annotations

import argparse, hashlib, json, os, resource, subprocess, sys, tempfile, threading, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE)); sys.path.insert(0, str(HERE.parent / "tests"))


def run_cli(code: str, folder: Path, out: Path, key: Path, workers: int) -> dict:
    env = dict(os.environ, PYTHONPATH=code, COLUMNS="200")
    cmd = [sys.executable, "-c", "import resource,sys,runpy; sys.argv=['vindr']+sys.argv[1:];"
           "import atexit; atexit.register(lambda: print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr));"
           "runpy.run_module('vindr_cli', run_name='__main__')",
           "anonymize", str(folder), str(out), "--key", str(key), "-j", str(workers)]
    journal, peak, stop = out / ".vindr" / "anonymize.journal.jsonl", [0], threading.Event()

    def poll():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], journal.stat().st_size)
            except OSError:
                pass
            time.sleep(0.2)
    t = threading.Thread(target=poll); t.start()
    t0, ru0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, capture_output=True, env=env, cwd=code)      # cwd: sys.path[0] of -c
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    stop.set(); t.join()
    err = p.stderr.decode("utf-8", "replace")
    rss = next((int(l.split()[1]) // 1024 for l in err.splitlines() if l.startswith("MAXRSS_KB")), None)
    return {"rc": p.returncode, "wall_s": round(time.monotonic() - t0, 1),
            "cpu_s": round(ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime, 1),
            "driver_rss_mb": rss, "journal_peak_mb": round(peak[0] / 2**20, 2)}


def tables_sha256(path: Path) -> str | None:
    """SHA-256 of a table's rows sorted by input key (workers finish in any order), as JSON
    (termcache: the manifest and the linkage compared between two checkouts; nothing printed of them)."""
    if not path.exists():
        return None
    import pyarrow.parquet as pq
    rows = sorted(pq.read_table(path).to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def main() -> None:
    import warnings
    warnings.simplefilter("ignore")
    from hostile10_bench import materialise
    from helpers import key_file_in
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", required=True)
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    folder = Path(tempfile.gettempdir()) / f"studyscale-in-{a.files}"    # one path: the outputs name it (keyed)
    if not folder.is_dir():
        build = Path(tempfile.mkdtemp(prefix="studyscale-build-"))
        materialise(folder, {f"f{i:05d}.dcm": ("distinct", i) for i in range(a.files)}, build)
    work = Path(tempfile.mkdtemp(prefix="studyscale-"))
    key = key_file_in(work)
    out = work / "out"
    res = {"code": a.code, "files": a.files, "load": os.getloadavg()}
    res["first"] = run_cli(a.code, folder, out, key, a.workers)
    res["manifest_mb"] = round((out / "manifest.parquet").stat().st_size / 2**20, 3)
    rec = out / ".vindr" / "anonymize_peers.json"
    res["peer_record_mb"] = round(rec.stat().st_size / 2**20, 3) if rec.exists() else None
    res["outputs_sha256"] = hashlib.sha256("".join(sorted(
        f"{p.relative_to(out)} {hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in out.rglob("*.dcm"))).encode()).hexdigest()
    res["tables_sha256"] = {name: tables_sha256(path) for name, path in
                            (("manifest", out / "manifest.parquet"), ("linkage", Path(f"{out}.linkage.parquet")))}
    res["rerun"] = run_cli(a.code, folder, out, key, a.workers)
    subprocess.run(["rm", "-rf", str(work)])
    print(json.dumps(res))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
