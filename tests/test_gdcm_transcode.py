"""vindr_cli.synth.encode.gdcm_transcode: GDCM's JPEG 2000 lossless on request (GDCM_ALSO, what
bench/decode_corpus.py uses), a real CR film's pixels back exactly, GDCM's own file written
where asked; the syntaxes routed to GDCM by default (GDCM_TS) are unchanged."""
from __future__ import annotations

import warnings

import numpy as np
import pydicom
from pydicom import uid

from real_images import from_wheel
from vindr_cli.synth.encode import GDCM_ALSO, GDCM_TS, gdcm_transcode


def test_jpeg2000_lossless_by_gdcm_round_trips(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(from_wheel("RG3_UNCR.dcm", tmp_path))
    arr = ds.pixel_array[600:856, 500:756].copy()          # a 256 x 256 piece of the film
    ds.Rows, ds.Columns = arr.shape
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    assert uid.JPEG2000Lossless in GDCM_ALSO and uid.JPEG2000Lossless not in GDCM_TS
    back = gdcm_transcode(ds, uid.JPEG2000Lossless)
    assert back.file_meta.TransferSyntaxUID == uid.JPEG2000Lossless
    assert np.array_equal(back.pixel_array, arr) and arr.std() > 0
    path = tmp_path / "gdcm.dcm"
    again = gdcm_transcode(ds, uid.JPEG2000Lossless, path=path)
    assert path.is_file() and np.array_equal(pydicom.dcmread(path).pixel_array, arr)
    assert again.PixelData == back.PixelData
