"""What keeps ``vindr decode`` close to the decoder's own time (bench/README.md, decode floor):
work a decode worker must not do. Pixels are compared in test_decode_fastpath.py.

* decoding an image does not import pandas (0.3 s of CPU in every worker, which
  ``pa.array`` used to pay to look for pandas objects);
* the resize hands Pillow the float image through Arrow, without ``fromarray``'s copy.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image


def test_a_decode_worker_never_imports_pandas(tmp_path):
    """A real J2K image decoded, windowed by the table, resized and written, in a fresh
    interpreter that has imported what the driver imports: pandas stays out."""
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path

        import pydicom
        from pydicom.data import get_testdata_file

        import vindr_cli.cli, vindr_cli.pixels.batch
        from vindr_cli.pixels import window
        from vindr_cli.pixels.resize import parse_size
        from vindr_cli.pixels import task
        from vindr_cli.runner.discover import discover

        assert "pandas" not in sys.modules, "imported before decoding"
        window.LUT_MIN_SAMPLES = task.LUT_MIN_SAMPLES = 0      # the table path on this small image
        ds = pydicom.dcmread(get_testdata_file("MR_small_jp2klossless.dcm", download=False))
        ds.PatientIdentityRemoved = "YES"
        ds.WindowCenter, ds.WindowWidth = 600, 800
        inp = Path({str(tmp_path)!r}) / "in"
        inp.mkdir()
        ds.save_as(inp / "a.dcm")
        ctx = task.setup(task.DecodeConfig(output={str(tmp_path / "out")!r}, size=parse_size("40")))
        result = task.decode_one(ctx, discover(inp)[0])
        row = result["rows"]["images"][0]
        assert row["status"] == "ok" and row["out_rows"] == 40, row
        print("pandas" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


@pytest.mark.skipif(not hasattr(Image, "fromarrow"), reason="Pillow without fromarrow: the copy is the only path")
def test_resize_takes_the_arrow_path_not_fromarray(monkeypatch):
    """With ``Image.fromarray`` unusable the resize still works: the image reached Pillow
    through Arrow (a failing Arrow path would fall back to fromarray silently, slower)."""
    from vindr_cli.pixels import resize as R

    a = (np.random.default_rng(3).random((300, 200)) * 255).astype(np.float32)
    ref = R.resize(a, 150, 100)

    def refused(*args, **kwargs):
        raise AssertionError("fromarray used")

    monkeypatch.setattr(R.Image, "fromarray", refused)
    out = R.resize(a, 150, 100)
    np.testing.assert_array_equal(out, ref)
    assert out.shape == (150, 100) and out.dtype == np.float32 and float(out.std()) > 0
