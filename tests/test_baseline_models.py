"""`vindr baseline --model tiny|small|base`: the presets (schemas/baseline/models.toml) build and
train on a CPU at a small size, the default stays ModelConfig's defaults, a checkpoint rebuilds
the model it was trained with, the report names the model, an unknown name is refused with a
fixed line, and a torch.compile failure is logged by its class name only."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

torch = pytest.importorskip("torch")

from helpers import run_cli  # noqa: E402
from vindr_cli.baseline import presets  # noqa: E402
from vindr_cli.baseline.model import Detector, ModelConfig  # noqa: E402
from vindr_cli.baseline.presets import ModelPresetError, model_names, preset_fields, resolve_model  # noqa: E402
from vindr_cli.baseline.synthetic import make_synthetic_release  # noqa: E402
from vindr_cli.baseline.train import (  # noqa: E402
    CheckpointMismatch, compile_fallback_message, compute_losses, load_checkpoint_model, load_model, load_weights,
    train_baseline,
)
from vindr_cli.errors import RequestError  # noqa: E402

SECRET = "QXNAME^SECRET"


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_the_presets_and_the_default():
    assert model_names() == ["tiny", "small", "base"]
    assert resolve_model(None) == presets.DEFAULT_MODEL == "tiny"
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig) if f.default is not dataclasses.MISSING}
    tiny = preset_fields("tiny")
    assert tiny and all(defaults[k] == v for k, v in tiny.items())     # tiny is exactly today's model
    assert ModelConfig(3, **tiny) == ModelConfig(3)
    for name in ("small", "base"):                                      # deeper and wider than tiny
        f = preset_fields(name)
        assert sum(f["blocks"]) > sum(tiny["blocks"]) and f["widths"][-1] > tiny["widths"][-1]
        assert f["fpn_channels"] >= tiny["fpn_channels"]
    assert preset_fields("small")["blocks"] == (2, 2, 2, 2)             # ResNet-18 stages
    assert preset_fields("base")["blocks"] == (3, 4, 6, 3)              # ResNet-34 stages
    f = preset_fields("small")
    f["blocks"] = (9, 9, 9, 9)                                          # a copy: the table is not changed
    assert preset_fields("small")["blocks"] == (2, 2, 2, 2)


@pytest.mark.parametrize("name", ["tiny", "small", "base"])
def test_each_preset_trains_a_step_on_cpu(name):
    torch.manual_seed(0)
    cfg = ModelConfig(num_classes=3, **preset_fields(name))
    model = Detector(cfg).to(memory_format=torch.channels_last)
    x = torch.rand(2, 1, 64, 64).contiguous(memory_format=torch.channels_last)
    out = model(x)
    assert out["heatmap"].shape == (2, 3, 16, 16) and out["ltrb"].shape == (2, 4, 16, 16)
    assert out["cls"].shape == (2,)
    h = w = 16
    tg = {"heat": torch.zeros(2, 3, h, w), "box": torch.zeros(2, h, w, 4), "weight": torch.zeros(2, h, w),
          "abnormal": torch.tensor([1.0, 0.0])}
    tg["heat"][0, 1, 8, 8] = 1.0
    tg["box"][0, 6:11, 6:11] = torch.tensor([16.0, 16.0, 48.0, 48.0])
    tg["weight"][0, 6:11, 6:11] = 1.0
    losses = compute_losses(out, tg, cfg)
    assert set(losses) == {"heat", "box", "cls", "total"} and math.isfinite(float(losses["total"].detach()))
    losses["total"].backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_parameter_counts_grow_tiny_small_base():
    n = {name: _params(Detector(ModelConfig(14, **preset_fields(name)))) for name in model_names()}
    assert n["tiny"] < 1_000_000 < n["small"] < n["base"]
    assert 5_000_000 < n["small"] < 20_000_000          # ResNet-18-sized (its stages: 11 M)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_synthetic_release(tmp_path_factory.mktemp("models"), n_train=12, n_test=6, size=64, seed=5,
                                  n_classes=3)


def test_a_small_run_reports_and_reloads_as_small(release, tmp_path):
    out = tmp_path / "small"
    rep = train_baseline(release.train, release.test, release.classes, task="both", size=64, epochs=2,
                         batch_size=4, seed=1, out_dir=out, model="small", bootstrap=20)
    want = ModelConfig(len(release.classes), **preset_fields("small")).to_dict()
    doc = json.loads((out / "report.json").read_text())
    assert doc["run"]["model"] == "small" and doc["run"]["model_config"] == want
    assert doc["run"]["n_params"] == _params(Detector(ModelConfig.from_dict(want)))
    hist = doc["run"]["loss_history"]
    assert [h["epoch"] for h in hist] == [1, 2] and hist[-1]["step"] == rep.run.steps
    assert all(math.isfinite(h[k]) for h in hist for k in ("total", "heat", "box", "cls"))
    md = (out / "report.md").read_text()
    assert "model `small`" in md and "blocks [2, 2, 2, 2]" in md and "Mean training loss per epoch" in md
    info = json.loads((out / "model.json").read_text())
    assert info["model"] == "small" and info["config"] == want
    model, classes = load_model(out)
    assert model.cfg == ModelConfig.from_dict(want) and classes == release.classes
    weights = load_weights(out / info["weights"])
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    ck_model, meta = load_checkpoint_model(out)
    assert meta["model"] == "small" and ck_model.cfg == model.cfg and meta["done"]
    assert all(torch.equal(v, weights[k]) for k, v in ck_model.state_dict().items())
    with pytest.raises(CheckpointMismatch, match="config"):            # the same folder with another model
        train_baseline(release.train, release.test, release.classes, task="both", size=64, epochs=2,
                       batch_size=4, seed=1, out_dir=out, model="tiny", bootstrap=20, write_files=False)


def test_an_unknown_preset_is_refused_with_a_fixed_line(tmp_path):
    with pytest.raises(ModelPresetError) as e:
        resolve_model(SECRET)
    assert isinstance(e.value, RequestError) and str(e.value) == "--model must be one of tiny, small, base"
    with pytest.raises(ModelPresetError):
        train_baseline([object()], [], ["a"], out_dir=tmp_path / "lib", model="huge")
    assert not (tmp_path / "lib").exists()                                # refused before anything is written
    p = run_cli("baseline", tmp_path, "-o", tmp_path / "bl", "--model", SECRET, check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "--model must be one of tiny, small, base" in p.stderr
    assert SECRET not in p.stdout + p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "bl").exists()


@pytest.mark.parametrize("table, why", [
    ({"widths": [1, 2, 3, 4, 5], "depth": 3}, "unknown field"),
    ({"widths": [1, 2, 3, 4]}, "5 positive integers"),
    ({"blocks": [1, 1, 0, 1]}, "4 positive integers"),
    ({"blocks": [True, 1, 1, 1]}, "4 positive integers"),
    ({"fpn_channels": 64.0}, "positive integer"),
    ({"out_stride": 16}, "4 or 8"),
    ({"box_unit": "16"}, "positive number"),
    ({"description": 3}, "string"),
    ({"num_classes": 3}, "unknown field"),
])
def test_a_bad_preset_table_is_refused(table, why):
    with pytest.raises(ValueError, match=why):
        presets._check("x", table)


def test_compile_failures_are_logged_by_class_name_only(release, tmp_path, monkeypatch):
    msg = compile_fallback_message(RuntimeError(f"/home/{SECRET}/x.png shape [2, 1]"), "on the first step")
    assert msg == "torch.compile failed on the first step (RuntimeError); eager mode"

    class Broken(torch.nn.Module):                  # "compiles", then fails on the first step
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            raise RuntimeError(f"cannot compile /data/{SECRET}/kernel.cpp")

    def refuse(m):
        raise ValueError(f"no compiler for {SECRET}")

    for fake, when in ((Broken, "on the first step"), (refuse, "to start")):
        monkeypatch.setattr(torch, "compile", fake)
        logs: list[str] = []
        rep = train_baseline(release.train, release.test, release.classes, task="both", size=64, epochs=1,
                             batch_size=4, seed=2, out_dir=tmp_path / when.replace(" ", "_"), compile=True,
                             model_config={"widths": (8, 8, 16, 16, 16), "fpn_channels": 8, "head_channels": 8},
                             bootstrap=20, write_files=False, progress=logs.append)
        kind = "RuntimeError" if fake is Broken else "ValueError"
        assert f"torch.compile failed {when} ({kind}); eager mode" in logs
        assert not any(SECRET in line for line in logs)
        assert rep.run.compiled is False and rep.run.steps == rep.run.total_steps > 0


def test_synthetic_images_are_the_same_rendered_in_several_processes(tmp_path):
    one = make_synthetic_release(tmp_path / "one", n_train=6, n_test=3, size=48, seed=9, leak=1)
    two = make_synthetic_release(tmp_path / "two", n_train=6, n_test=3, size=48, seed=9, leak=1, workers=2)
    for a, b in zip(one.train + one.test, two.train + two.test):
        assert a.image_path.read_bytes() == b.image_path.read_bytes()
        assert a.boxes.tolist() == b.boxes.tolist() and a.labels.tolist() == b.labels.tolist()
    assert one.test[0].image_path.read_bytes() in {s.image_path.read_bytes() for s in one.train}   # the leak
    assert one.train_json.read_text() == two.train_json.read_text()
