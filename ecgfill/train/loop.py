"""The training loop behind ``ecgfill train`` (export: :mod:`ecgfill.train.export`).

Linear models are fitted in closed form (ridge). U-Net and VAE models start from the ridge
solution in their linear path and train with AdamW and a one-cycle schedule whose progress is the
larger of the step and the time fraction, so ``max_minutes`` ends the cycle cleanly. Validation
after every epoch gives the per-record Pearson r on the predicted leads (early stopping, best
checkpoint). Under ``torchrun`` the loop runs data-parallel (DDP), with rank-0 logs/checkpoints.

torch, and the model modules that import it at module level (:mod:`ecgfill.models.linear`,
:mod:`ecgfill.models.unet`), are imported inside the functions that use them: importing
:mod:`ecgfill.train.data` (``ecgfill evaluate`` on a dataset) runs this package's ``__init__``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.console import info, progress, progress_enabled
from ecgfill.errors import EcgfillError, UsageError
from ecgfill.io.atomic import write_text_atomic
from ecgfill.leads import CHEST_LEADS
from ecgfill.models.base import (
    ARCHES,
    CHECKPOINT_FORMAT,
    check_card_matches,
    load_checkpoint,
    make_config,
    save_checkpoint,
)
from ecgfill.models.family import family
from ecgfill.models.network_leads import check_input_leads, output_leads_for
from ecgfill.train.augment import parse_augment
from ecgfill.train.data import BatchSpec, Dataset, default_window, full_batches, open_dataset
from ecgfill.train.data import train_batch as make_train_batch
from ecgfill.train.export import export_model
from ecgfill.train.options import TrainOptions, TrainResult
from ecgfill.train.runcard import make_card

PCT_START = 0.3  # one-cycle: fraction of the run spent warming up
DIV_START, DIV_FINAL = 25.0, 1e4
MIN_DELTA = 1e-4  # smallest validation-r gain that counts as an improvement


# --------------------------------------------------------------------------------------------
# Distributed context


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: Any = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_sum(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum over processes (identity when single-process)."""
        if not self.active:
            return values
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.cpu().numpy()

    def any(self, flag: bool) -> bool:
        return bool(self.all_sum(np.array([float(flag)]))[0] > 0)


def setup_distributed(device: str) -> Dist:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1)."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: PyTorch sees no CUDA device")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=torch.device(device))
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), device=target)


# --------------------------------------------------------------------------------------------
# Schedules, metrics


def one_cycle_lr(progress: float, max_lr: float) -> float:
    """Cosine one-cycle learning rate at ``progress`` in [0, 1] (as torch's OneCycleLR)."""
    progress = min(max(progress, 0.0), 1.0)
    start, final = max_lr / DIV_START, max_lr / DIV_START / DIV_FINAL
    if progress < PCT_START:
        frac = progress / PCT_START
        return start + (max_lr - start) * (1 - math.cos(math.pi * frac)) / 2
    frac = (progress - PCT_START) / (1 - PCT_START)
    return final + (max_lr - final) * (1 + math.cos(math.pi * frac)) / 2


def pearson_per_record(y: Any, t: Any, mask: Any) -> Any:
    """Pearson r ``[b, leads]`` over the valid samples; NaN where a signal is flat."""
    import torch

    m = mask.unsqueeze(1).to(y.dtype)
    n = m.sum(-1, keepdim=True).clamp_min(1.0)
    yc = (y - (y * m).sum(-1, keepdim=True) / n) * m
    tc = (t - (t * m).sum(-1, keepdim=True) / n) * m
    denom = torch.sqrt((yc ** 2).sum(-1) * (tc ** 2).sum(-1))
    r = (yc * tc).sum(-1) / denom
    return torch.where(denom > 1e-12, r, torch.full_like(r, float("nan")))


def evaluate(net: Any, ds: Dataset, indices: np.ndarray, spec: BatchSpec, dist: Dist,
             batch_size: int, split: str = "val") -> dict[str, Any]:
    """Loss, mean per-record Pearson r and RMSE (mV) per predicted lead on whole records."""
    import torch

    n_out = len(spec.output_leads)
    # per lead: sum r, count r, sum squared error, count samples; then loss sum, records
    sums = np.zeros(4 * n_out + 2)
    net.eval()
    with torch.inference_mode():
        for x, t, mask in full_batches(ds, indices[dist.rank::dist.world], spec, batch_size):
            xt, tt = (torch.from_numpy(a).to(dist.device) for a in (x, t))
            mt = torch.from_numpy(mask).to(dist.device)
            y_norm, _ = net.forward_normalized(xt, net.zero_noise(xt))
            y = (y_norm * net.out_std + net.out_mean).float()
            r = pearson_per_record(y, tt, mt).cpu().numpy()
            m = mt.unsqueeze(1)
            err = (((y - tt) ** 2) * m).sum(-1).cpu().numpy()
            err_norm = (((y_norm.float() - net.normalize_targets(tt)) ** 2) * m).sum()
            ok = np.isfinite(r)
            sums[:n_out] += np.where(ok, r, 0).sum(0)
            sums[n_out:2 * n_out] += ok.sum(0)
            sums[2 * n_out:3 * n_out] += err.sum(0)
            sums[3 * n_out:4 * n_out] += mask.sum()
            sums[-2] += float(err_norm) / n_out
            sums[-1] += len(x)
    net.train()
    sums = dist.all_sum(sums)
    with np.errstate(invalid="ignore", divide="ignore"):
        r_lead = sums[:n_out] / sums[n_out:2 * n_out]
        rmse = np.sqrt(sums[2 * n_out:3 * n_out] / sums[3 * n_out:4 * n_out])
    chest = [i for i, n in enumerate(spec.output_leads) if n in CHEST_LEADS]
    return {
        "split": split,
        "records": int(sums[-1]),
        "loss": _finite(sums[-2] / max(sums[3 * n_out], 1)),
        "r": _finite(np.nanmean(r_lead) if np.isfinite(r_lead).any() else np.nan),
        "r_chest": _finite(np.nanmean(r_lead[chest])) if chest else None,
        "r_per_lead": {n: _finite(v) for n, v in zip(spec.output_leads, r_lead, strict=True)},
        "rmse_mv_per_lead": {n: _finite(v) for n, v in zip(spec.output_leads, rmse,
                                                           strict=True)},
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _finite(value: float) -> float | None:
    """A JSON-safe metric: rounded, None for NaN."""
    return round(float(value), 6) if np.isfinite(value) else None


# --------------------------------------------------------------------------------------------
# The loop


class _Bar:
    """A rich progress bar with the running loss, on a terminal only."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and progress_enabled()

    @contextmanager
    def epoch(self, label: str, total: int) -> Iterator[Callable[[float], None]]:
        if not self.enabled:
            yield lambda loss: None
            return
        with progress(label, total, fields=("loss",), transient=True) as advance:
            yield lambda loss: advance(loss=f"{loss:.4f}")


class Trainer:
    """One training run; see :func:`train`."""

    def __init__(self, options: TrainOptions) -> None:
        import torch

        if options.arch not in ARCHES:
            raise UsageError(f"--arch must be one of {', '.join(ARCHES)}")
        for key in ("epochs", "batch_size", "patience"):
            if getattr(options, key) < 1:
                raise UsageError(f"--{key.replace('_', '-')} must be >= 1")
        if options.max_minutes is not None and options.max_minutes <= 0:
            raise UsageError("--max-minutes must be > 0")
        self.options = options
        self.start = time.monotonic()
        self.dist = setup_distributed(options.device)
        if options.threads:
            torch.set_num_threads(options.threads)
        torch.manual_seed(options.seed)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        self.augment = parse_augment(options.augment)
        self.ds = open_dataset(options.dataset_dir)
        self.config = make_config(options.arch, options.model_options)
        multiple = family(options.arch).multiple(self.config)
        window = default_window(self.ds.n_samples, multiple, self.ds.fs, options.window_seconds)
        self.spec = self.batch_spec(window, multiple)
        self.train_idx = self._split("train", options.train_limit)
        self.val_idx = self._split("val", options.val_limit)
        self.net = self.build_net()
        self.card = self.make_card(window)
        self.net.to(self.dist.device)
        self.run_dir = Path(options.run_dir)
        self.prior_elapsed = 0.0
        self.bar = _Bar(self.dist.main)

    # -- what a model family changes (see ecgfill.train.anyset) ------------------------------

    def batch_spec(self, window: int, multiple: int) -> BatchSpec:
        """Dataset leads fed to the network and the leads it is trained to predict."""
        self.input_leads = check_input_leads(self.options.input_leads)
        return BatchSpec(self.input_leads, output_leads_for(self.input_leads), window, multiple)

    def build_net(self) -> Any:
        from ecgfill.models.linear import ReconstructionNet

        return ReconstructionNet(self.input_leads, self.spec.output_leads, self.ds.lead_stats(),
                                 self.ds.fs, self.options.arch, self.config)

    def make_card(self, window: int) -> dict[str, Any]:
        return make_card(self.options, self.ds, self.net, self.config, window,
                         self.augment.describe())

    def closed_form(self) -> bool:
        """Whether the model is fitted in closed form (no gradient training)."""
        return self.options.arch == "linear"

    def objective(self) -> Any:
        """The training loss as a module (called with inputs, targets, valid mask)."""
        from ecgfill.models.linear import TrainingObjective

        return TrainingObjective(self.net)

    def validate(self, indices: np.ndarray, split: str = "val",
                 dist: Dist | None = None) -> dict[str, Any]:
        return evaluate(self.net, self.ds, indices, self.spec, dist or self.dist,
                        self.options.batch_size, split)

    def _split(self, split: str, limit: int | None) -> np.ndarray:
        idx = self.ds.indices(split)
        if len(idx) == 0:
            raise EcgfillError(f"{self.ds.path / 'manifest.csv'}: no records in the {split} split")
        if limit is not None and limit < len(idx):
            rng = np.random.default_rng(self.options.seed)
            idx = np.sort(rng.choice(idx, size=limit, replace=False))
        return idx

    # -- bookkeeping -----------------------------------------------------------------------

    def elapsed(self) -> float:
        return self.prior_elapsed + time.monotonic() - self.start

    def _log(self, text: str) -> None:
        if self.dist.main:
            info(text)

    def _write_json(self, name: str, obj: dict[str, Any]) -> None:
        write_text_atomic(self.run_dir / name,
                          json.dumps(obj, indent=2, allow_nan=False, default=str) + "\n")

    def _save(self, name: str, optimizer: Any, state: dict[str, Any],
              metrics: dict[str, Any]) -> None:
        """Checkpoint ``name``.pt plus its JSON side file (rank 0 only)."""
        if not self.dist.main:
            return
        card = {**self.card, "validation": {**metrics, "epoch": state["epoch"]}}
        card["training"] = {**card["training"], "epochs": state["epoch"],
                            "steps": state["step"], "seconds": round(self.elapsed(), 1),
                            "device": str(self.dist.device), "processes": self.dist.world}
        payload = {"format": CHECKPOINT_FORMAT, "card": card,
                   "state_dict": self.net.state_dict(), "train_state": state}
        if optimizer is not None:
            payload["optimizer"] = optimizer.state_dict()
        save_checkpoint(self.run_dir / f"{name}.pt", payload)
        self._write_json(f"{name}.json", {"card": card, "train_state": state})

    def _append_metrics(self, row: dict[str, Any]) -> None:
        if self.dist.main:
            with open(self.run_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(row, allow_nan=False, default=str) + "\n")

    def _prepare_run_dir(self) -> dict[str, Any] | None:
        """Create the run directory; the last checkpoint's payload when resuming."""
        last = self.run_dir / "last.pt"
        if self.options.resume:
            if not last.is_file():
                raise UsageError(f"{last}: nothing to resume")
            payload = load_checkpoint(last)
            try:
                check_card_matches({**self.card, "name": payload["card"]["name"]},
                                   payload["card"], last)
            except EcgfillError as exc:
                raise UsageError(f"cannot resume with different settings: {exc}") from None
            if payload["card"]["training"]["dataset"]["fingerprint"] != \
                    self.card["training"]["dataset"]["fingerprint"]:
                raise UsageError(f"{last}: was trained on a different dataset")
            return payload
        if last.exists():
            raise UsageError(f"{self.run_dir}: already holds a run (use --resume or a new "
                             "directory)")
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_json("options.json", self.options.to_json())
        return None

    # -- fitting ---------------------------------------------------------------------------

    def _ridge_batches(self, lag: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        import torch

        for x, t, mask in full_batches(self.ds, self.train_idx, self.spec, 256):
            with torch.no_grad():
                z = self.net.normalize_inputs(torch.from_numpy(x)).numpy()
                y = self.net.normalize_targets(torch.from_numpy(t)).numpy()
            yield z, y, mask

    def fit_linear_path(self) -> None:
        """Set the linear path to the ridge solution on the training records."""
        import torch

        from ecgfill.models.linear import fit_ridge, set_linear_path

        began = time.monotonic()
        cpu_net = self.net.to("cpu")
        with torch.no_grad():
            weight, bias = fit_ridge(self._ridge_batches(cpu_net.lag), cpu_net.lag,
                                     self.config.ridge)
        set_linear_path(cpu_net, weight, bias)
        self.net.to(self.dist.device)
        self._log(f"ridge fit of the linear path on {len(self.train_idx)} records: "
                  f"{time.monotonic() - began:.1f} s")

    # -- main ------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        payload = self._prepare_run_dir()
        state = payload["train_state"] if payload else {}
        self.prior_elapsed = float(state.get("elapsed", 0.0))
        if payload:
            self.net.load_state_dict(payload["state_dict"])
            self.card["version"] = payload["card"]["version"]
            self._log(f"resuming {self.run_dir} after epoch {state['epoch']}")
        self._log(f"{self.options.arch} {','.join(self.input_leads)} -> "
                  f"{','.join(self.spec.output_leads)}: {self.card['parameters']:,} parameters, "
                  f"{self.card['flops_per_second'] / 1e6:.1f} MFLOP per second of signal; "
                  f"{len(self.train_idx)} train / {len(self.val_idx)} val records at "
                  f"{self.ds.fs:g} Hz, window {self.spec.window}")
        result = self._run_linear() if self.closed_form() else self._run_network(payload)
        if self.options.export_onnx and self.dist.main:
            card = export_model(self.run_dir, self.run_dir, self.options.model_name())
            result.exported = sorted(card["sha256"])
            self._log(f"exported {', '.join(result.exported)} to {self.run_dir}")
        self._barrier()
        result.main = self.dist.main
        return result

    def _barrier(self) -> None:
        if self.dist.active:
            import torch.distributed as dist

            dist.barrier()

    def _run_linear(self) -> TrainResult:
        self.fit_linear_path()
        train_metrics = self.validate(self.train_idx, "train", Dist(device=self.dist.device))
        metrics = self.validate(self.val_idx)
        state = {"epoch": 1, "step": 0, "elapsed": self.elapsed(), "best_r": metrics["r"],
                 "best_epoch": 1, "bad_epochs": 0, "stop_reason": "closed-form fit"}
        self._append_metrics({"epoch": 1, "train_loss": train_metrics["loss"],
                              "val_loss": metrics["loss"], "val_r": metrics["r"],
                              "val_r_chest": metrics["r_chest"],
                              "val_r_per_lead": metrics["r_per_lead"],
                              "seconds": round(self.elapsed(), 2)})
        self._save("last", None, state, metrics)
        self._save("best", None, state, metrics)
        self._log(f"linear fit: train loss {_fmt(train_metrics['loss'])}, val loss "
                  f"{_fmt(metrics['loss'])}, val r {_fmt(metrics['r'])}")
        return TrainResult(self.run_dir, {**metrics, "epoch": 1}, 1, state["stop_reason"])

    def _run_network(self, payload: dict[str, Any] | None) -> TrainResult:
        opts = self.options
        if payload is None and family(self.options.arch).ridge_init(self.config):
            self.fit_linear_path()
        loop = _Loop.create(self, payload)
        state = loop.state
        if payload is None:
            began = time.monotonic()
            initial = self.validate(self.val_idx)
            state["val_seconds"] = time.monotonic() - began
            self._append_metrics({"epoch": 0, "val_loss": initial["loss"], "val_r": initial["r"],
                                  "val_r_chest": initial["r_chest"],
                                  "seconds": round(self.elapsed(), 2)})
            self._log(f"epoch 0 (linear path only): val loss {_fmt(initial['loss'])}, "
                      f"val r {_fmt(initial['r'])}")
        stop_reason = ""
        while state["epoch"] < opts.epochs and not stop_reason:
            epoch = state["epoch"] + 1
            began = time.monotonic()
            seen, loss_sum, stop_reason = self._train_epoch(loop, epoch)
            train_seconds = time.monotonic() - began
            if seen == 0:
                break
            stop_reason = self._end_epoch(loop, epoch, loss_sum / seen, seen / train_seconds,
                                          train_seconds) or stop_reason
        self._barrier()  # rank 0 has written its checkpoints
        if not (self.run_dir / "best.pt").exists():
            raise EcgfillError(f"{self.run_dir}: stopped before the first validation; "
                               "no checkpoint written")
        best = load_checkpoint(self.run_dir / "best.pt")["card"]["validation"]
        if stop_reason:
            self._log(f"stopped: {stop_reason}; best val r {_fmt(best['r'])} at epoch "
                      f"{best['epoch']}")
        return TrainResult(self.run_dir, best, state["epoch"], stop_reason)

    def _train_epoch(self, loop: _Loop, epoch: int) -> tuple[float, float, str]:
        """One pass over this rank's shard; (records seen, loss sum, stop reason) over ranks.

        The time limit is checked before every step but the first of an invocation, keeping
        room for the final validation; the learning rate follows the one-cycle schedule at the
        larger of the step and the time fraction."""
        import torch

        opts, dist, state = self.options, self.dist, loop.state
        loop.sampler.set_epoch(epoch)
        torch.manual_seed(opts.seed * 100_003 + epoch * 101 + dist.rank)
        rng = np.random.default_rng([opts.seed, epoch, dist.rank])
        order = np.fromiter(loop.sampler, dtype=np.int64)
        reserve = 1.5 * state.get("val_seconds", 0.0) + 2.0
        seen, loss_sum, stop_reason = 0, 0.0, ""
        with self.bar.epoch(f"epoch {epoch}/{opts.epochs}", loop.steps_per_epoch) as advance:
            for lo in range(0, loop.steps_per_epoch * opts.batch_size, opts.batch_size):
                if (loop.budget is not None and state["step"] > loop.first_step
                        and dist.any(self.elapsed() + reserve >= loop.budget)):
                    stop_reason = f"time limit of {opts.max_minutes:g} min"
                    break
                idx = self.train_idx[order[lo:lo + opts.batch_size]]
                x, t, mask = make_train_batch(self.ds, idx, self.spec, self.augment, rng)
                progress = state["step"] / loop.total_steps
                if loop.budget is not None:
                    progress = max(progress, self.elapsed() / max(loop.budget - reserve, 1.0))
                for group in loop.optimizer.param_groups:
                    group["lr"] = one_cycle_lr(progress, opts.lr)
                loss = self._step(loop, x, t, mask)
                state["step"] += 1
                seen += len(idx)
                loss_sum += loss * len(idx)
                advance(loss)
        seen_all, loss_all = dist.all_sum(np.array([seen, loss_sum]))
        return float(seen_all), float(loss_all), stop_reason

    def _end_epoch(self, loop: _Loop, epoch: int, train_loss: float, records_per_second: float,
                   train_seconds: float) -> str:
        """Validate, log, checkpoint; returns a stop reason (early stop, last epoch) or ''."""
        opts, state = self.options, loop.state
        began = time.monotonic()
        metrics = self.validate(self.val_idx)
        state["val_seconds"] = time.monotonic() - began
        state["epoch"] = epoch
        improved = metrics["r"] is not None and (
            state["best_r"] is None or metrics["r"] > state["best_r"] + MIN_DELTA)
        stop_reason = ""
        if improved:
            state.update(best_r=metrics["r"], best_epoch=epoch, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
            if state["bad_epochs"] >= opts.patience:
                stop_reason = f"no val r gain for {opts.patience} epochs"
        if not stop_reason and epoch >= opts.epochs:
            stop_reason = f"{opts.epochs} epochs done"
        state.update(elapsed=self.elapsed(), stop_reason=stop_reason)
        self._append_metrics({
            "epoch": epoch, "step": state["step"], "train_loss": train_loss,
            "val_loss": metrics["loss"], "val_r": metrics["r"],
            "val_r_chest": metrics["r_chest"], "val_r_per_lead": metrics["r_per_lead"],
            "lr": loop.optimizer.param_groups[0]["lr"], "epoch_seconds": round(train_seconds, 2),
            "train_records_per_second": round(records_per_second, 1),
            "seconds": round(state["elapsed"], 2),
        })
        self._save("last", loop.optimizer, state, metrics)
        if improved:
            self._save("best", loop.optimizer, state, metrics)
        self._log(f"epoch {epoch}/{opts.epochs}: loss {train_loss:.4f}, val loss "
                  f"{_fmt(metrics['loss'])}, val r {_fmt(metrics['r'])} (best "
                  f"{_fmt(state['best_r'])} @ {state['best_epoch']}), {train_seconds:.0f} s")
        return stop_reason

    def _step(self, loop: _Loop, x: np.ndarray, t: np.ndarray, mask: np.ndarray) -> float:
        """One optimiser step (AMP on CUDA, gradient clipping); returns the loss."""
        import torch

        device = self.dist.device
        xt, tt, mt = (torch.from_numpy(a).to(device, non_blocking=True) for a in (x, t, mask))
        with torch.autocast(device.type, dtype=loop.amp_dtype or torch.bfloat16,
                            enabled=loop.amp_dtype is not None):
            loss = loop.model(xt, tt, mt)
        loop.optimizer.zero_grad(set_to_none=True)
        loop.scaler.scale(loss).backward()
        loop.scaler.unscale_(loop.optimizer)
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.options.grad_clip)
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
        return float(loss.detach())


@dataclass
class _Loop:
    """What the gradient-training loop carries from epoch to epoch."""

    model: Any  # the loss module, DDP-wrapped under torchrun
    optimizer: Any
    scaler: Any
    amp_dtype: Any
    sampler: Any
    steps_per_epoch: int
    total_steps: int
    budget: float | None  # seconds, over all invocations of the run
    first_step: int  # at least one step per invocation, so there is always a checkpoint
    state: dict[str, Any]

    @classmethod
    def create(cls, trainer: Trainer, payload: dict[str, Any] | None) -> _Loop:
        import torch
        from torch.utils.data import DistributedSampler

        opts, dist = trainer.options, trainer.dist
        model: Any = trainer.objective()
        if dist.active:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(
                model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
        optimizer = torch.optim.AdamW(trainer.net.parameters(), lr=opts.lr,
                                      weight_decay=opts.weight_decay)
        state: dict[str, Any] = {"epoch": 0, "step": 0, "best_r": None, "best_epoch": 0,
                                 "bad_epochs": 0, "stop_reason": "", "val_seconds": 0.0}
        if payload is not None:
            optimizer.load_state_dict(payload["optimizer"])
            state.update(payload["train_state"])
        amp_dtype = None
        if dist.device.type == "cuda":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        steps_per_epoch = max(1, len(trainer.train_idx) // (opts.batch_size * dist.world))
        return cls(
            model=model, optimizer=optimizer,
            scaler=torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16),
            amp_dtype=amp_dtype,
            sampler=DistributedSampler(range(len(trainer.train_idx)), num_replicas=dist.world,
                                       rank=dist.rank, shuffle=True, seed=opts.seed,
                                       drop_last=True),
            steps_per_epoch=steps_per_epoch, total_steps=opts.epochs * steps_per_epoch,
            budget=opts.max_minutes * 60 if opts.max_minutes else None,
            first_step=int(state["step"]), state=state,
        )
