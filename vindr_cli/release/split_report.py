"""Outputs of `vindr split`: split.csv, split_report.json, split_report.png, the rich table.

Every file is written atomically (temporary name in DIR, then one rename).
"""
from __future__ import annotations

import io
import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from vindr_cli.resources import schema_path
from vindr_cli.atomic import atomic_write

SPLIT_CSV, REPORT_JSON, REPORT_PNG = "split.csv", "split_report.json", "split_report.png"


@cache
def split_schema() -> dict:
    return json.loads(schema_path("release", "split.json").read_text(encoding="utf-8"))


def check_split_table(df: pd.DataFrame) -> None:
    """The table has the schema's columns, in order, no null where none is allowed, known enums."""
    fields = split_schema()["fields"]
    names = [f["name"] for f in fields]
    if list(df.columns) != names:
        raise ValueError(f"split table columns {list(df.columns)} differ from the schema {names}")
    for f in fields:
        col = df[f["name"]]
        if not f.get("nullable", True) and col.isna().any():
            raise ValueError(f"split table: null in {f['name']}")
        if "enum" in f and not col.dropna().isin(f["enum"]).all():
            raise ValueError(f"split table: value outside {f['enum']} in {f['name']}")


def write_split_csv(images: pd.DataFrame, path: Path) -> None:
    check_split_table(images)
    buf = io.StringIO()
    images.to_csv(buf, index=False, na_rep="", lineterminator="\n")
    with atomic_write(path) as f:
        f.write(buf.getvalue().encode("utf-8"))


def write_report_json(report: dict, path: Path) -> None:
    data = json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    with atomic_write(path) as f:
        f.write(data.encode("utf-8"))


def write_report_png(result, path: Path) -> bool:
    """Prevalence per label per side as grouped bars; False when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dependency of `vindr split`
        return False
    d = result.per_label
    n = len(d)
    fig = Figure(figsize=(max(6.0, 0.55 * n + 2.0), 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(n)
    width = 0.4
    c = result.counts
    ax.bar(x - width / 2, 100 * d["train_prevalence"], width,
           label=f"train ({c['train']['images']} images)", color="#4C72B0")
    ax.bar(x + width / 2, 100 * d["test_prevalence"], width,
           label=f"test ({c['test']['images']} images)", color="#DD8452")
    ax.set_xticks(x)
    ax.set_xticklabels(d["label"], rotation=45, ha="right", fontsize=8)
    for tick, missing in zip(ax.get_xticklabels(), (d["total"] > 0) & (d["test"] == 0)):
        if missing:
            tick.set_color("red")          # no test positive
    if (d["total"] > 0).any():
        ax.set_yscale("log")               # rare findings stay visible next to "No finding"
    ax.set_ylabel("images with the label (%, log scale)")
    m = result.measures
    ax.set_title(f"vindr split: {c['test'][result.unit]} test {result.unit}, "
                 f"LD {m['ld']:.2e}, seed {result.seed}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    with atomic_write(path) as f:
        f.write(buf.getvalue())
    return True


def write_outputs(result, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_split_csv(result.images, out_dir / SPLIT_CSV)
    result.outputs = {"split_csv": SPLIT_CSV, "report_json": REPORT_JSON}
    if write_report_png(result, out_dir / REPORT_PNG):
        result.outputs["report_png"] = REPORT_PNG
    write_report_json(result.to_dict(), out_dir / REPORT_JSON)


def render_split_report(result, console, *, max_bad_rows: int = 20) -> None:
    """Print the split as rich tables: sizes, per-label counts and prevalence, measures, bad rows."""
    from rich.markup import escape
    from rich.table import Table

    c = result.counts
    title = f"vindr split ({result.preset})" if result.preset else "vindr split"
    s = Table(title=title)
    s.add_column("side")
    for u in ("images", "studies", "patients"):
        s.add_column(u, justify="right")
    for side in ("train", "test"):
        s.add_row(side, *(str(c[side][u]) for u in ("images", "studies", "patients")))
    s.add_row("[bold]total", *(f"[bold]{c['train'][u] + c['test'][u]}" for u in ("images", "studies", "patients")))
    console.print(s)
    preset = result.info.get("preset_sizes")
    if preset and c["train"][preset["unit"]] != preset["train"]:
        console.print(f"preset {result.preset}: test is exactly {preset['test']} {preset['unit']}; train holds the "
                      f"rest of the data ({c['train'][preset['unit']]} {preset['unit']}, preset {preset['train']})",
                      highlight=False)

    t = Table(title="labels (images with the label)")
    t.add_column("label")
    t.add_column("total", justify="right")
    t.add_column("train", justify="right")
    t.add_column("train %", justify="right")
    t.add_column("test", justify="right")
    t.add_column("test %", justify="right")
    for r in result.per_label.itertuples(index=False):
        style = "[red]" if r.total > 0 and r.test == 0 else ""
        t.add_row(f"{style}{escape(str(r.label))}", str(r.total), str(r.train), f"{100 * r.train_prevalence:.2f}",
                  f"{style}{r.test}", f"{100 * r.test_prevalence:.2f}")
    console.print(t)

    m = result.measures
    console.print(f"unit {result.unit}, target test size {result.target}, seed {result.seed}; "
                  f"LD {m['ld']:.3e}  LPD {m['lpd']:.3e}  ED {m['ed']:g} ({result.unit}) "
                  "(balance of labels, label pairs and sizes across sides; 0 is perfect)", highlight=False)
    missing = result.labels_without_test
    console.print("labels with no test positive: " + (escape(", ".join(missing)) if missing else "none"), highlight=False)
    if result.skipped_meta_images:
        console.print(f"metadata images without a valid annotation (not split): {result.skipped_meta_images}")
    bad = result.bad_rows
    if bad:
        b = Table(title=f"bad rows skipped: {len(bad)}")
        b.add_column("line", justify="right")
        b.add_column("reason")
        for r in list(bad)[:max_bad_rows]:
            b.add_row(str(r.line), escape(result._shown(r.reason)))   # as split_report.json: quoted values masked
        console.print(b)
        if len(bad) > max_bad_rows:
            console.print(f"... and {len(bad) - max_bad_rows} more (all in split_report.json)")
    if result.outputs:
        console.print("written: " + ", ".join(result.outputs.values()))
