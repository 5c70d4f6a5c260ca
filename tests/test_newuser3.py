"""A fresh clone's README walked literally (new-user walk 3): what did not match, checked here.

* ``vindr info PATH`` on an empty folder warned ``INPUT holds no files``: info's argument is
  PATH (the runner's message is shared by info, anonymize and decode), so the warning now names
  no argument;
* the Quick start listed what ``make demo`` writes without ``demo/audit.json`` and
  ``demo/selection/``, which ``scripts/demo.sh`` writes and the release reads.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import run_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("strict", [False, True])
def test_info_on_an_empty_folder_warns_in_words_that_fit_its_argument(tmp_path, strict):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run_cli("info", empty, *(["--strict"] if strict else []), check=False)
    out = p.stdout + p.stderr
    assert p.returncode == (1 if strict else 0), out
    warn = [ln for ln in out.splitlines() if ln.startswith("warning:")]
    assert warn and "nothing to do" in warn[0], out
    assert "INPUT" not in out            # info's argument is PATH (vindr info --help)
    assert "PATH" in run_cli("info", "--help").stdout


def test_anonymize_of_an_empty_folder_gives_the_same_warning_and_writes_no_image(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    p = run_cli("anonymize", empty, tmp_path / "out", "--key", keys / "k.key", "--strict", check=False)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "warning: found no file to read: nothing to do" in out
    assert not [f for f in (tmp_path / "out").rglob("*.dcm")]


def test_quick_start_names_every_folder_and_file_the_demo_writes():
    demo = (REPO / "scripts" / "demo.sh").read_text()
    written = set(re.findall(r'"\$OUT/([A-Za-z_.]+)', demo)) | set(re.findall(r'\$OUT/([A-Za-z_.]+)', demo))
    written = {w.rstrip(".") for w in written}
    assert {"anon", "audit.json", "selection", "images", "split", "release", "baseline", "keys"} <= written, written
    readme = (REPO / "README.md").read_text()
    quick = readme[readme.index("## Quick start"):readme.index("### Your own export")]
    quick = " ".join(quick.split())
    for w in sorted(written):
        assert f"`demo/{w}" in quick, f"the Quick start does not name demo/{w}"
