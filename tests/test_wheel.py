"""The wheel is the product: built from this checkout, installed into a fresh virtual
environment, and run from a folder outside the checkout, it must find its data
(``schemas/`` shipped as package data) and de-identify the sample export cleanly.

The fresh environment gets vindr only from the wheel; its dependencies come from the test
environment's site-packages through a ``.pth`` line (a folder named in a .pth file is put on
sys.path but its own .pth files are not run, so the editable install of this checkout stays
out of it). No network is needed: the wheel is built without build isolation.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from helpers import key_hex

REPO = Path(__file__).resolve().parent.parent


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["COLUMNS"] = "200"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out),
                        str(REPO)], capture_output=True, text=True, env=_env(), cwd=out)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "License classifiers are deprecated" not in p.stderr + p.stdout
    assert "project.license` as a TOML table is deprecated" not in p.stderr + p.stdout
    wheels = list(out.glob("vindr-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_ships_every_schema(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix("vindr_cli/schemas/") for n in names if n.startswith("vindr_cli/schemas/")}
    expected = {p.relative_to(REPO / "schemas").as_posix() for p in (REPO / "schemas").rglob("*") if p.is_file()}
    assert expected and expected <= shipped
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "License-Expression: Apache-2.0" in text


def test_wheel_ships_the_review_page(wheel):
    """vindr review's page (HTML/JS/CSS) is package data of vindr_cli.review."""
    names = set(zipfile.ZipFile(wheel).namelist())
    page = {p.name for p in (REPO / "vindr_cli" / "review" / "static").iterdir() if p.is_file()}
    assert {"index.html", "review.js", "review.css"} <= page
    assert {f"vindr_cli/review/static/{n}" for n in page} <= names


def test_installed_wheel_runs_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=_env())
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True, env=_env()).stdout.strip())
    (site / "vindr_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    p = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                       capture_output=True, text=True, env=_env())
    assert p.returncode == 0, p.stdout + p.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([str(py), "-c", "import vindr_cli, vindr_cli.resources as r; "
                            "print(vindr_cli.__file__); print(r.schemas_dir())"],
                           capture_output=True, text=True, check=True, env=_env(), cwd=work).stdout.split()
    assert all(Path(w).is_relative_to(venv) for w in where), where   # the wheel's copy, not the checkout
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    key = keys / "vindr.key"
    key.write_text(key_hex("cd") + "\n")
    key.chmod(0o600)
    vindr = venv / "bin" / "vindr"
    anon = subprocess.run([str(vindr), "anonymize", str(REPO / "sample_dicoms"), "out", "--key", str(key), "-j", "1"],
                          capture_output=True, text=True, env=_env(), cwd=work)
    assert anon.returncode == 0, anon.stdout + anon.stderr
    assert (work / "out" / "manifest.parquet").is_file()
    assert list((work / "out").rglob("*.dcm"))
    audit = subprocess.run([str(vindr), "audit", "out"], capture_output=True, text=True, env=_env(), cwd=work)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "no findings" in audit.stdout
