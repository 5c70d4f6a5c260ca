"""Cost of the structure check (vindr_cli.dicomio.structure) per MB of header: a real file
(pydicom test data) grown with a 20,000-item sequence (~2.7 MB of header) in three encodings;
the raw walk, the decode of every value, and read_header without and with both.
Run: PYTHONPATH=. python bench/structure_bench.py"""
import io, time, warnings
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from vindr_cli.dicomio.structure import check_structure, check_values
from vindr_cli.dicomio.header import read_header
warnings.simplefilter("ignore")
for ts_name, fname in (("explicit LE", "CT_small.dcm"), ("implicit LE", "MR_small_implicit.dcm"), ("explicit BE", "MR_small_bigendian.dcm")):
    ds = pydicom.dcmread(get_testdata_file(fname, download=False))
    items = []
    for i in range(20000):
        it = Dataset(); it.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"; it.ReferencedSOPInstanceUID = f"1.2.3.4.5.6.7.8.9.{i}"
        it.ReferencedFrameNumber = [1, 2, 3]; it.ImageComments = "x" * 40
        items.append(it)
    ds.ReferencedImageSequence = Sequence(items)
    buf = io.BytesIO(); ds.save_as(buf, enforce_file_format=True); data = buf.getvalue()
    hdr_mb = (len(data) - len(ds.PixelData)) / 1e6
    def t(fn, n=3):
        best = 1e9
        for _ in range(n):
            t0 = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t0)
        return best
    f = io.BytesIO(data)
    ts = t(lambda: check_structure(f, len(data)))
    parsed = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    tv = t(lambda: check_values(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)))
    tp = t(lambda: pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True))
    tr = t(lambda: read_header(io.BytesIO(data), len(data), structure=False))
    trs = t(lambda: read_header(io.BytesIO(data), len(data)))
    print(f"{ts_name}: header {hdr_mb:.2f} MB; walk {ts/hdr_mb*1000:.0f} ms/MB; decode-all {(tv-tp)/hdr_mb*1000:.0f} ms/MB; "
          f"pydicom parse (values converted lazily) {tp/hdr_mb*1000:.0f} ms/MB; read_header {tr/hdr_mb*1000:.0f} -> {trs/hdr_mb*1000:.0f} ms/MB")

for fname in ("CT_small.dcm", "MR_small_implicit.dcm", "rtplan.dcm"):
    data = open(get_testdata_file(fname, download=False), "rb").read()
    n = 200
    t0 = time.perf_counter()
    for _ in range(n):
        read_header(io.BytesIO(data), len(data), structure=False)
    t1 = time.perf_counter()
    for _ in range(n):
        read_header(io.BytesIO(data), len(data))
    t2 = time.perf_counter()
    print(f"{fname}: read_header {(t1 - t0) / n * 1000:.2f} ms -> {(t2 - t1) / n * 1000:.2f} ms per file with the structure check")
