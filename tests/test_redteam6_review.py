"""Red team 6 (see tests/test_redteam6.py), the images decoded before a review: a box drawn in
`vindr review` ("needs more redaction") is masked by running `vindr anonymize` again, which
re-writes that DICOM file; the PNGs `vindr decode` made before still show what the box covers.

* Leaked, fixed (release/build.py): `vindr release --images` took those PNGs, so the release's
  image showed the text its DICOM file had masked. Release now refuses a decoded image older
  than its DICOM file when that file carries review boxes.
* Leaked, strict xfail (vindr_cli/pixels/batch.py): `vindr decode` run again into the same
  folder counts the input as done (its output exists and is whole) and keeps the old PNG.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from helpers import run_cli
from test_redteam6 import world  # noqa: F401  (the module's fixture: eight images anonymized, a split)
from vindr_cli.deid.batch import anonymize
from vindr_cli.deid.profile import load_profile
from vindr_cli.release.build import ReleaseError, build_release
from vindr_cli.review import decisions
from vindr_cli.review.queues import build_queues


def _png(images: Path, output: str) -> np.ndarray:
    row = next(r for r in pq.read_table(images / "images.parquet").to_pylist() if r["input"] == output)
    return np.asarray(Image.open(images / row["output"]))


@pytest.fixture(scope="module")
def reviewed(world, tmp_path_factory):  # noqa: F811
    """The tree decoded, then a box drawn over the top-left quarter of a released image and
    applied by anonymize run again; every flagged image accepted (a person confirmed)."""
    base = tmp_path_factory.mktemp("redteam6review")
    anon = base / "anon"
    shutil.copytree(world["anon"], anon)
    run_cli("decode", anon, base / "img", "--size", "64", "-j", "1")
    iid = sorted(l.split(",")[0] for l in (world["split"] / "split.csv").read_text().splitlines()[1:])[0]
    row = next(r for r in world["rows"] if r["image_id"] == iid)
    box = [0, 0, 0, row["columns"] // 2, row["rows"] // 2]
    decisions.record(anon, iid, "spot-check", "more-redaction", box=box, shape=(row["rows"], row["columns"], 1))
    s = anonymize(world["export"], anon, key_path=world["key"], profile=load_profile(), workers=1, write_linkage=False)
    assert s.review_rewritten == 1
    for queue, ids in build_queues(anon, spot=0).queues.items():
        for i in ids:
            decisions.record(anon, i, queue, "accept")
    return {"anon": anon, "img": base / "img", "row": row}


def test_release_refuses_images_decoded_before_the_review_boxes(world, reviewed, tmp_path):  # noqa: F811
    out = tmp_path / "release"
    with pytest.raises(ReleaseError, match="before their DICOM file was re-written"):
        build_release(reviewed["anon"], world["split"], out, images_dir=reviewed["img"])
    assert not out.exists()
    fresh = tmp_path / "img2"                     # decoded again into a new folder: released, box masked
    run_cli("decode", reviewed["anon"], fresh, "--size", "64", "-j", "1")
    build_release(reviewed["anon"], world["split"], out, images_dir=fresh)
    a = np.asarray(Image.open(next(out.glob(f"*/images/{reviewed['row']['image_id']}.png"))))
    quarter = a[: a.shape[0] // 2 - 1, : a.shape[1] // 2 - 1]
    assert quarter.std() == 0 and a.std() > 0     # the reviewer's box, flat; the rest of the image is not


def test_decode_run_again_redoes_an_input_rewritten_with_review_boxes(reviewed):
    before = _png(reviewed["img"], reviewed["row"]["output"]).copy()
    run_cli("decode", reviewed["anon"], reviewed["img"], "--size", "64", "-j", "1")
    after = _png(reviewed["img"], reviewed["row"]["output"])
    assert not np.array_equal(before, after)
