"""Train and evaluate the baseline (``vindr baseline``).

:func:`train_baseline` trains :class:`~vindr_cli.baseline.model.Detector` on a list of
:class:`~vindr_cli.baseline.data.Sample`, evaluates it on the test samples and writes the
report (``report.json``, ``report.md``, ``pr_curves.png``, ``examples.png``) and the final
weights into ``out_dir``.

* CPU (the fallback everywhere): float32, a DataLoader without workers on small machines,
  deterministic for a seed: ``torch.manual_seed``, numpy, random, deterministic algorithms
  (warn only), a seeded batch order per epoch and augmentation seeded per ``(seed, epoch,
  index)``. Two runs with the same seed give identical weights.
* CUDA: bf16 autocast, channels_last, pinned-memory DataLoader with persistent workers,
  ``torch.compile`` when available (falls back to eager if compiling or the first step fails),
  cuDNN autotuning (not bit-reproducible).
* Checkpoints after every epoch under ``out_dir/checkpoints/``: the model's state_dict
  (safetensors when importable, else ``torch.save``), the optimizer/schedule state, then
  ``checkpoint.json`` naming them; each file is written to a temporary name and renamed, and
  ``checkpoint.json`` is renamed last, so a crash leaves the previous checkpoint intact. A re-run
  with the same ``out_dir`` resumes from it (same options required; a finished run only
  re-evaluates).
* ``time_budget_s`` caps this invocation's training time: after a few steps the step time is
  measured and the cosine schedule is shortened to fit, so the run ends with a decayed learning
  rate instead of being cut mid-schedule.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vindr_cli.baseline.boxes import clip_boxes, decode_ltrb
from vindr_cli.baseline.data import Augment, DetectionDataset, EpochBatchSampler, Sample, collate
from vindr_cli.baseline.losses import gaussian_focal_loss, giou_loss, ttf_targets
from vindr_cli.baseline.model import Detector, ModelConfig, cell_points, decode_detections
from vindr_cli.baseline.presets import preset_fields, resolve_model
from vindr_cli.baseline.submission import FILE as SUBMISSION_FILE
from vindr_cli.baseline.submission import submission_spec, write_submission
from vindr_cli.errors import RequestError

__all__ = ["CheckpointMismatch", "Prediction", "TASKS", "compile_fallback_message", "load_checkpoint_model", "load_model",
           "predict", "resolve_device", "train_baseline"]

TASKS = ("detect", "classify", "both")
HEAT_WEIGHT, BOX_WEIGHT, CLS_WEIGHT = 1.0, 5.0, 1.0
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_META = "checkpoint.json"

try:  # optional: safetensors for the weights
    from safetensors.torch import load_file as _st_load
    from safetensors.torch import save_file as _st_save
except ImportError:  # pragma: no cover - depends on the environment
    _st_load = _st_save = None


class CheckpointMismatch(RequestError):
    """``out_dir`` holds a checkpoint of a run with other options (exit 2: start over or pick another folder)."""


@dataclass
class Prediction:
    """Detections of one image in its original pixel coordinates, and its abnormality score."""
    boxes: np.ndarray          # float32 [K, 4]
    scores: np.ndarray         # float32 [K]
    labels: np.ndarray         # int64 [K]
    abnormal_score: float | None = None


# ---------------------------------------------------------------------------------------------
# device, seeds

def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU. ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise RequestError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    return d


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# checkpoints

def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_weights(state: dict, path: Path) -> Path:
    """Write a state_dict atomically: ``path`` with suffix ``.safetensors`` when safetensors is
    importable, else ``.pt`` (``torch.save``). Returns the path written."""
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if _st_save is not None:
        path = path.with_suffix(".safetensors")
        _atomic_write(path, lambda p: _st_save(state, str(p)))
    else:
        path = path.with_suffix(".pt")
        _atomic_write(path, lambda p: torch.save(state, p))
    return path


def load_weights(path: Path) -> dict:
    if path.suffix == ".safetensors":
        if _st_load is None:
            raise RuntimeError(f"{path}: safetensors is not installed")
        return _st_load(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def _save_checkpoint(ckpt_dir: Path, tag: str, model: torch.nn.Module, optimizer, meta: dict) -> None:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    wpath = save_weights(model.state_dict(), ckpt_dir / f"model_{tag}")
    spath = ckpt_dir / f"state_{tag}.pt"
    state = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
             "numpy_rng": np.random.get_state(), "python_rng": random.getstate()}
    _atomic_write(spath, lambda p: torch.save(state, p))
    meta = dict(meta, model_file=wpath.name, state_file=spath.name)
    mpath = ckpt_dir / CHECKPOINT_META
    _atomic_write(mpath, lambda p: p.write_text(json.dumps(meta, indent=2)))
    for f in ckpt_dir.iterdir():  # older checkpoints, now superseded
        if f.name not in (wpath.name, spath.name, CHECKPOINT_META) and f.name.startswith(("model_", "state_")):
            f.unlink()


def _load_checkpoint(ckpt_dir: Path):
    mpath = ckpt_dir / CHECKPOINT_META
    if not mpath.exists():
        return None
    meta = json.loads(mpath.read_text())
    weights = load_weights(ckpt_dir / meta["model_file"])
    state = torch.load(ckpt_dir / meta["state_file"], map_location="cpu", weights_only=False)
    return meta, weights, state


def load_model(out_dir: Path | str, device: str = "cpu") -> tuple[Detector, list[str]]:
    """The final model written by :func:`train_baseline` (``out_dir/model.json`` + weights),
    rebuilt from the config recorded there (``model.json`` also names the ``--model`` preset)."""
    out_dir = Path(out_dir)
    info = json.loads((out_dir / "model.json").read_text())
    model = Detector(ModelConfig.from_dict(info["config"]))
    model.load_state_dict(load_weights(out_dir / info["weights"]))
    return model.to(resolve_device(device)).eval(), list(info["classes"])


def load_checkpoint_model(out_dir: Path | str, device: str = "cpu") -> tuple[Detector, dict]:
    """The model of the last checkpoint under ``out_dir/checkpoints/`` (also of a run that was
    stopped before it finished), rebuilt from the config in its ``checkpoint.json``, and that
    file's contents (``model``: the preset name, ``fingerprint``, ``epoch``, ``step``, ...)."""
    ck = _load_checkpoint(Path(out_dir) / CHECKPOINT_DIR)
    if ck is None:
        raise FileNotFoundError(f"{Path(out_dir) / CHECKPOINT_DIR / CHECKPOINT_META} does not exist")
    meta, weights, _ = ck
    model = Detector(ModelConfig.from_dict(meta["fingerprint"]["config"]))
    model.load_state_dict(weights)
    return model.to(resolve_device(device)).eval(), meta


def compile_fallback_message(exc: BaseException, when: str) -> str:
    """The line logged when torch.compile is given up: a fixed text and the exception's class
    name only. An exception's message is free text (it can quote paths, shapes or values)."""
    return f"torch.compile failed {when} ({type(exc).__name__}); eager mode"


# ---------------------------------------------------------------------------------------------
# training pieces

class TrainCollate:
    """Collate plus the detector's targets (built in the DataLoader workers when there are any)."""

    def __init__(self, num_classes: int, size: int, stride: int, detect: bool):
        self.num_classes, self.size, self.stride, self.detect = num_classes, size, stride, detect

    def __call__(self, batch):
        images, tg = collate(batch)
        if self.detect:
            h = w = self.size // self.stride
            parts = [ttf_targets(b, l, self.num_classes, h, w, self.stride) for b, l in zip(tg["boxes"], tg["labels"])]
            tg["heat"] = torch.stack([p[0] for p in parts])
            tg["box"] = torch.stack([p[1] for p in parts])
            tg["weight"] = torch.stack([p[2] for p in parts])
        return images, tg


def compute_losses(out: dict, tg: dict, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    losses = {}
    if cfg.detect:
        heat = out["heatmap"]
        losses["heat"] = gaussian_focal_loss(heat, tg["heat"])
        b, _, h, w = heat.shape
        pts = cell_points(h, w, cfg.out_stride, heat.device)
        pred = decode_ltrb(pts[None], out["ltrb"].float().permute(0, 2, 3, 1), cfg.box_unit)
        m = tg["weight"] > 0
        if bool(m.any()):
            losses["box"] = giou_loss(pred[m], tg["box"][m], tg["weight"][m])
        else:
            losses["box"] = pred.sum() * 0.0
    if cfg.classify:
        losses["cls"] = F.binary_cross_entropy_with_logits(out["cls"].float(), tg["abnormal"])
    losses["total"] = (HEAT_WEIGHT * losses.get("heat", 0.0) + BOX_WEIGHT * losses.get("box", 0.0)
                       + CLS_WEIGHT * losses.get("cls", 0.0))
    return losses


def _lr_factor(step: int, total: int, final: float = 0.02) -> float:
    warm = max(1, min(200, int(0.05 * total)))
    if step < warm:
        return (step + 1) / warm
    prog = min(1.0, (step - warm) / max(1, total - warm))
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * prog))


def _param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _default_workers(device: torch.device) -> int:
    n = os.cpu_count() or 1
    if device.type == "cuda":
        return max(1, min(8, n - 1))
    return 0 if n <= 4 else min(2, n // 4)


def _to_device(tg: dict, device: torch.device) -> dict:
    out = dict(tg)
    for k in ("abnormal", "heat", "box", "weight"):
        if k in out:
            out[k] = out[k].to(device, non_blocking=True)
    return out


@torch.no_grad()
def predict(model: Detector, samples: Sequence[Sample], classes: Sequence[str], *, size: int,
            device: torch.device | str = "cpu", batch_size: int = 16, num_workers: int = 0,
            score_thr: float = 0.01, nms_iou: float = 0.5, max_det: int = 100,
            topk: int = 100) -> tuple[list[Prediction], float]:
    """Predictions for ``samples`` (original pixel coordinates) and the seconds it took."""
    device = torch.device(device)
    cfg = model.cfg
    model.eval()
    ds = DetectionDataset(samples, size, classes)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate,
                                         num_workers=num_workers, pin_memory=device.type == "cuda")
    cuda = device.type == "cuda"
    out_list: list[Prediction] = []
    t0 = time.perf_counter()
    for images, tg in loader:
        images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            out = model(images)
        dets = (decode_detections(out["heatmap"], out["ltrb"], cfg.out_stride, cfg.box_unit, topk=topk,
                                  score_thr=score_thr, nms_iou=nms_iou, max_det=max_det)
                if cfg.detect else None)
        cls = torch.sigmoid(out["cls"].float()).cpu().numpy() if cfg.classify else None
        for j in range(images.shape[0]):
            if dets is not None:
                bx, sc, lb = (t.cpu() for t in dets[j])
                w, h = tg["orig_size"][j]
                boxes = tg["transform"][j].inverse(bx.numpy())
                boxes = clip_boxes(torch.from_numpy(boxes), w, h).numpy().astype(np.float32)
                p = Prediction(boxes, sc.numpy().astype(np.float32), lb.numpy().astype(np.int64))
            else:
                p = Prediction(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
            if cls is not None:
                p.abnormal_score = float(cls[j])
            else:
                p.abnormal_score = float(p.scores.max()) if len(p.scores) else 0.0
            out_list.append(p)
    if cuda:
        torch.cuda.synchronize()
    return out_list, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# the entry point

def train_baseline(train_samples: Sequence[Sample], test_samples: Sequence[Sample], classes: Sequence[str], *,
                   task: str = "both", size: int = 1024, epochs: int = 30, batch_size: int | None = None,
                   lr: float | None = None, device: str = "auto", seed: int = 0, out_dir: Path | str,
                   time_budget_s: float | None = None, resume: bool = True, weight_decay: float = 1e-4,
                   model: str | None = None, model_config: dict | None = None, augment: Augment | None = None,
                   num_workers: int | None = None, compile: bool | None = None,
                   threshold_samples: int = 2000, bootstrap: int = 1000, write_files: bool = True,
                   progress: Callable[[str], None] | None = None, submission=None,
                   on_epoch_end: Callable[[int, dict], None] | None = None):
    """Train the baseline, evaluate it on ``test_samples`` and write the report to ``out_dir``.

    ``task``: ``detect`` (heatmap + boxes), ``classify`` (normal/abnormal head only) or ``both``
    (shared backbone, summed losses). ``batch_size`` defaults to 16, ``lr`` (AdamW, cosine
    schedule with linear warm-up) to ``2e-3 * batch_size / 16``. ``model``: a preset of
    ``schemas/baseline/models.toml`` (``tiny``, the default, ``small``, ``base``; an unknown name
    is a :class:`~vindr_cli.baseline.presets.ModelPresetError`); ``model_config`` overrides
    :class:`ModelConfig` fields on top of it (widths, blocks, fpn_channels, out_stride, ...); ``augment``
    the augmentation (default :class:`Augment()`: scale 0.9-1.1, flips only for
    non-laterality-sensitive classes, intensity jitter). ``compile``: None = try on CUDA only.
    ``threshold_samples``: at most this many training images (a seeded subset) are predicted to
    choose the abnormality threshold (Youden's J). ``on_epoch_end(epoch, info)`` is called after
    each epoch's checkpoint is written (an exception there stops the run, the checkpoint stays).
    ``submission``: a :class:`~vindr_cli.baseline.submission.SubmissionSpec` (the label set's
    ids) for ``test_predictions.csv``, the test predictions ``vindr evaluate --pred`` reads
    (default: the classes' own positions, no "No finding" row).

    Returns the :class:`~vindr_cli.baseline.report.Report` (also written to ``out_dir``).
    """
    from vindr_cli.baseline import report as report_mod

    if task not in TASKS:
        raise RequestError(f"task must be one of {TASKS}, not {task!r}")
    if not train_samples:
        raise RequestError("no training samples")
    model_name = resolve_model(model)   # before anything is written
    log = progress or (lambda msg: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    classes = list(classes)
    batch_size = int(batch_size or 16)
    batch_size = max(1, min(batch_size, len(train_samples)))
    lr = float(lr if lr is not None else 2e-3 * batch_size / 16)
    cfg = ModelConfig(num_classes=max(1, len(classes)), detect=task in ("detect", "both"),
                      classify=task in ("classify", "both"), **{**preset_fields(model_name), **(model_config or {})})
    augment = augment if augment is not None else Augment()
    workers = _default_workers(dev) if num_workers is None else int(num_workers)

    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    prev_fill = torch.utils.deterministic.fill_uninitialized_memory
    prev_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        seed_everything(seed)
        if cuda:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        else:
            torch.use_deterministic_algorithms(True, warn_only=True)
            # deterministic mode would also fill every new tensor (a quarter of a CPU step);
            # nothing here reads uninitialised memory, so results are the same without it
            torch.utils.deterministic.fill_uninitialized_memory = False

        # channels_last: faster on CUDA (tensor cores) and on CPU (oneDNN) alike
        model = Detector(cfg).to(dev).to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr)

        ds = DetectionDataset(train_samples, size, classes, augment=augment, seed=seed,
                              cache_bytes=(2 << 30) if workers == 0 else 0)
        sampler = EpochBatchSampler(len(ds), batch_size, seed=seed, shuffle=True, drop_last=len(ds) >= 2 * batch_size)
        loader = torch.utils.data.DataLoader(
            ds, batch_sampler=sampler, num_workers=workers,
            collate_fn=TrainCollate(cfg.num_classes, size, cfg.out_stride, cfg.detect),
            pin_memory=cuda, persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)
        steps_per_epoch = len(sampler)
        planned = epochs * steps_per_epoch

        fingerprint = {"classes": classes, "task": task, "size": int(size), "epochs": int(epochs), "seed": int(seed),
                       "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "config": cfg.to_dict(),
                       "n_train": len(train_samples)}
        ckpt_dir = out_dir / CHECKPOINT_DIR
        start_epoch, step, total_steps, done = 0, 0, planned, epochs == 0
        prior_seconds, prior_images = 0.0, 0
        loss_history: list[dict] = []   # per epoch (or part of one): mean losses of its steps
        resumed = False
        if resume:
            ck = _load_checkpoint(ckpt_dir)
            if ck is not None:
                meta, weights, state = ck
                if meta["fingerprint"] != fingerprint:
                    diff = sorted(k for k in fingerprint if meta["fingerprint"].get(k) != fingerprint[k])
                    raise CheckpointMismatch(f"{ckpt_dir} holds a run with other options ({', '.join(diff)}); "
                                             "use another output directory or resume=False")
                model.load_state_dict(weights)
                optimizer.load_state_dict(state["optimizer"])
                torch.set_rng_state(state["torch_rng"])
                np.random.set_state(state["numpy_rng"])
                random.setstate(state["python_rng"])
                start_epoch, step, total_steps, done = meta["epoch"], meta["step"], meta["total_steps"], meta["done"]
                prior_seconds, prior_images = meta.get("train_seconds", 0.0), meta.get("train_images", 0)
                loss_history = list(meta.get("loss_history", []))
                resumed = True
                log(f"resuming from {ckpt_dir} (epoch {start_epoch}, step {step}{', finished' if done else ''})")

        train_model = model
        want_compile = cuda if compile is None else bool(compile)
        compiled = False
        if want_compile and not done and hasattr(torch, "compile"):
            try:
                train_model = torch.compile(model)
                compiled = True
            except Exception as exc:  # pragma: no cover - depends on the toolchain
                log(compile_fallback_message(exc, "to start"))
                train_model = model

        run_start = time.perf_counter()
        deadline = run_start + time_budget_s if time_budget_s else None
        t_first = None          # end of this run's first step (warm-up excluded from throughput)
        imgs_after_first = 0
        run_steps = 0
        stopped_by_budget = False
        epoch = start_epoch
        last_losses: dict[str, float] = {}

        def step_fn(images, tg):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                out = train_model(images)
            losses = compute_losses(out, tg, cfg)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            return losses

        def reestimate():
            nonlocal total_steps
            if deadline is None or t_first is None or run_steps < 2:
                return
            now = time.perf_counter()
            per_step = (now - t_first) / (run_steps - 1)
            fit = step + int(max(0.0, deadline - now) / per_step)
            total_steps = max(step, min(planned, fit))   # == step: stop now

        while not done and epoch < epochs:
            model.train()
            sampler.epoch = epoch
            finished_epoch = True
            # summed on the device and read once per epoch: no host sync per step on CUDA
            sums: dict[str, torch.Tensor] = {}
            n_sum = 0
            losses = {}
            for images, tg in loader:
                if step >= total_steps:
                    finished_epoch = False
                    break
                for g in optimizer.param_groups:
                    g["lr"] = lr * _lr_factor(step, total_steps)
                images = images.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
                tg = _to_device(tg, dev)
                try:
                    losses = step_fn(images, tg)
                except Exception as exc:
                    if not compiled or run_steps > 0:
                        raise
                    log(compile_fallback_message(exc, "on the first step"))
                    train_model, compiled = model, False
                    losses = step_fn(images, tg)
                if cuda and run_steps == 0:
                    torch.cuda.synchronize()
                step += 1
                run_steps += 1
                if t_first is None:
                    t_first = time.perf_counter()
                else:
                    imgs_after_first += images.shape[0]
                for k, v in losses.items():
                    v = v.detach().float()
                    sums[k] = sums[k] + v if k in sums else v.clone()
                n_sum += 1
                if run_steps == 6:
                    reestimate()
                if deadline is not None and time.perf_counter() > deadline:
                    stopped_by_budget = True
                    finished_epoch = False
                    break
            if finished_epoch:
                epoch += 1
            if n_sum:
                last_losses = {k: float(v.detach()) for k, v in losses.items()}
                loss_history.append({"epoch": epoch, "step": step, "steps": n_sum,
                                     **{k: float(v) / n_sum for k, v in sums.items()}})
            reestimate()
            if stopped_by_budget:
                total_steps = step   # the schedule ended here
            done = stopped_by_budget or step >= total_steps or epoch >= epochs
            if cuda:
                torch.cuda.synchronize()
            t_now = time.perf_counter()
            train_seconds = prior_seconds + (t_now - t_first if t_first else 0.0)
            meta = {"fingerprint": fingerprint, "epoch": epoch, "step": step, "total_steps": total_steps,
                    "done": done, "train_seconds": train_seconds, "train_images": prior_images + imgs_after_first,
                    "stopped_by_budget": stopped_by_budget, "losses": last_losses, "model": model_name,
                    "loss_history": loss_history}
            _save_checkpoint(ckpt_dir, f"e{epoch:04d}_s{step:07d}", model, optimizer, meta)
            log(f"epoch {epoch}/{epochs} step {step}/{total_steps} "
                + " ".join(f"{k}={v:.4f}" for k, v in last_losses.items())
                + (f" {imgs_after_first / (t_now - t_first):.1f} img/s" if t_first and imgs_after_first else ""))
            if on_epoch_end is not None:
                on_epoch_end(epoch, meta)
            if stopped_by_budget:
                log(f"time budget of {time_budget_s:g}s reached")
                break

        elapsed = (time.perf_counter() - t_first) if t_first else 0.0
        ck_meta = json.loads((ckpt_dir / CHECKPOINT_META).read_text()) if (ckpt_dir / CHECKPOINT_META).exists() else {}
        train_ips = (imgs_after_first / elapsed if imgs_after_first and elapsed > 0
                     else (ck_meta.get("train_images", 0) / ck_meta["train_seconds"]
                           if ck_meta.get("train_seconds") else None))

        # final weights + description, beside the report
        wpath = save_weights(model.state_dict(), out_dir / "model")
        info = {"model": model_name, "config": cfg.to_dict(), "classes": classes, "weights": wpath.name,
                "size": int(size), "task": task}
        _atomic_write(out_dir / "model.json", lambda p: p.write_text(json.dumps(info, indent=2)))

        # evaluation
        model.eval()
        eval_bs = 32 if cuda else 16
        eval_workers = workers if cuda else 0
        test_preds, t_inf = predict(model, test_samples, classes, size=size, device=dev, batch_size=eval_bs,
                                    num_workers=eval_workers)
        infer_ips = len(test_samples) / t_inf if t_inf > 0 and test_samples else None
        rng = np.random.default_rng(seed)
        thr_idx = (np.arange(len(train_samples)) if len(train_samples) <= threshold_samples
                   else np.sort(rng.choice(len(train_samples), threshold_samples, replace=False)))
        thr_samples = [train_samples[i] for i in thr_idx]
        thr_preds, _ = predict(model, thr_samples, classes, size=size, device=dev, batch_size=eval_bs,
                               num_workers=eval_workers)

        run = report_mod.RunInfo(
            task=task, device=str(dev), device_name=(torch.cuda.get_device_name(dev) if cuda else "cpu"),
            seed=seed, size=int(size), epochs=int(epochs), epochs_done=int(ck_meta.get("epoch", epoch)),
            steps=int(step), total_steps=int(total_steps), batch_size=batch_size, lr=lr,
            stopped_by_budget=bool(ck_meta.get("stopped_by_budget", stopped_by_budget)),
            time_budget_s=time_budget_s, resumed=resumed, compiled=compiled,
            deterministic=not cuda, train_images_per_s=train_ips, infer_images_per_s=infer_ips,
            train_seconds=float(ck_meta.get("train_seconds", elapsed)), n_threads=torch.get_num_threads(),
            torch_version=torch.__version__, final_losses=ck_meta.get("losses", last_losses),
            model_config=cfg.to_dict(), model=model_name,
            n_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
            loss_history=ck_meta.get("loss_history", loss_history))
        rep = report_mod.build_report(run, classes, train_samples, test_samples, test_preds,
                                      thr_samples, thr_preds, bootstrap=bootstrap, seed=seed)
        if write_files:
            report_mod.write_report(rep, out_dir, test_samples, test_preds)
            # the test split's predictions in the form `vindr evaluate --pred` reads (DICOM pixels)
            write_submission(out_dir / SUBMISSION_FILE, test_samples, test_preds,
                             submission or submission_spec(None, classes))
        return rep
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench
        torch.utils.deterministic.fill_uninitialized_memory = prev_fill
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev_tf32
