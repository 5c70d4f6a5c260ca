"""Start-up structure (issue 13): what a command imports and starts before it needs it.

Asserts structure, never time: importing the CLI loads none of the heavy libraries, and a
one-file `vindr anonymize --burned-in off` runs in process (no worker pool) without pandas,
torch, scipy, matplotlib or Dask (the tables are written through pyarrow alone)."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys

from pydicom.data import get_testdata_file

from helpers import key_file_in

HEAVY = ("pandas", "torch", "scipy", "matplotlib", "dask", "distributed", "sklearn", "tesserocr", "cv2")

PROBE = """
import atexit, json, sys
import concurrent.futures.process as cfp
pools = []
_init = cfp.ProcessPoolExecutor.__init__
def _spy(self, *a, **k):
    pools.append(1)
    return _init(self, *a, **k)
cfp.ProcessPoolExecutor.__init__ = _spy
def _report():
    sys.stderr.write("\\nPROBE " + json.dumps({"modules": sorted(m for m in sys.modules if "." not in m),
                                                  "pools": len(pools)}) + "\\n")
atexit.register(_report)
sys.argv = ["vindr", *sys.argv[1:]]
from vindr_cli.cli import main
main()
"""


def _probe(*args) -> tuple[dict, subprocess.CompletedProcess]:
    p = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True)
    line = [x for x in p.stderr.splitlines() if x.startswith("PROBE ")]
    assert line, f"exit {p.returncode}: no report"
    return json.loads(line[-1][len("PROBE "):]), p


def test_cli_import_loads_no_heavy_library():
    code = ("import sys, json; import vindr_cli.cli; "
            "print(json.dumps(sorted(m for m in sys.modules if '.' not in m)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "vindr_cli" in loaded and "typer" in loaded
    assert not loaded & {*HEAVY, "numpy", "pyarrow", "pydicom", "PIL", "gdcm"}


def test_one_file_anonymize_runs_in_process_without_heavy_libraries(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), src / "a.dcm")
    key = key_file_in(tmp_path)
    report, p = _probe("anonymize", src, tmp_path / "out", "--key", key, "--burned-in", "off")
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "out" / "manifest.parquet").is_file()
    assert report["pools"] == 0                  # one input: no process pool is started
    loaded = set(report["modules"])
    assert {"pydicom", "pyarrow"} <= loaded      # the probe saw the run's imports
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))



def test_one_file_rerun_reads_its_tables_without_pandas(tmp_path):
    """A re-run reads the previous manifest and linkage tables: through pyarrow's file reader,
    not `pq.read_table`, which imports pyarrow.dataset and pandas (about 0.25 s)."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), src / "a.dcm")
    key = key_file_in(tmp_path)
    args = ("anonymize", src, tmp_path / "out", "--key", key, "--burned-in", "off")
    first, p = _probe(*args)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "out.linkage.parquet").is_file()
    again, p = _probe(*args)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "pyarrow" in again["modules"]
    assert not set(again["modules"]) & set(HEAVY), sorted(set(again["modules"]) & set(HEAVY))

def test_two_files_start_a_pool(tmp_path):
    """The probe can fail: two inputs with -j 2 do start the pool."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        shutil.copy(get_testdata_file("CT_small.dcm", download=False), src / f"{i}.dcm")
    key = key_file_in(tmp_path)
    report, p = _probe("anonymize", src, tmp_path / "out", "--key", key, "--burned-in", "off", "-j", "2")
    assert p.returncode == 0, p.stderr[-2000:]
    assert report["pools"] == 1


def test_help_and_version_do_not_import_pydicom():
    for args in (["--help"], ["--version"], ["split", "--help"]):
        report, p = _probe(*args)
        assert p.returncode == 0, p.stderr[-2000:]
        assert "pydicom" not in report["modules"] and "numpy" not in report["modules"], args


def test_pydicom_is_quiet_whenever_it_is_imported():
    """main() no longer imports pydicom up front: the quieting (validation off, no warnings,
    logger at CRITICAL, which pydicom.config resets to WARNING when it runs) is applied the
    moment pydicom.config is imported, by whatever imports it."""
    code = ("import logging, sys, warnings\n"
            "from vindr_cli.dicomio.quiet import quiet_pydicom_when_imported\n"
            "quiet_pydicom_when_imported()\n"
            "assert 'pydicom' not in sys.modules\n"
            "from pydicom.dataset import Dataset\n"
            "import pydicom.config as c\n"
            "print(logging.getLogger('pydicom').level, c.settings.reading_validation_mode == c.IGNORE,\n"
            "      c.settings.writing_validation_mode == c.IGNORE)\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('default')\n"
            "    quiet_pydicom_when_imported()\n"   # again, pydicom loaded: applied at once
            "    ds = Dataset(); ds.PatientName = 'X' * 100; ds.SOPInstanceUID = 'not a uid!'\n"
            "print(len(w))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    level, read_ignored, write_ignored, *_ = out.stdout.split()
    assert (int(level), read_ignored, write_ignored) == (logging.CRITICAL, "True", "True")
    assert out.stdout.split()[-1] == "0" and not out.stderr
