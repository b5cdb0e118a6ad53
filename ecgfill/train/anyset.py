"""Training the any-subset family (:mod:`ecgfill.models.anyset`) with the shared loop.

Every step draws one lead layout (:func:`~ecgfill.models.anyset.sample_plan`: the shipped
sets, device layouts, the frontal plane with chest leads, random subsets) for the whole batch;
its linear path is the closed-form ridge for that layout from the training set's lagged
covariance, and the loss is the normalised MSE over the leads the layout leaves missing.
Validation scores a fixed list of layouts (``VALIDATION_SETS``); the run's figure is their mean.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ecgfill.errors import UsageError
from ecgfill.leads import CHEST_LEADS, INDEPENDENT_LEADS, LEAD_INDEX, STANDARD_LEADS, LeadPlan
from ecgfill.models import anyset
from ecgfill.models.base import flops_per_second, load_checkpoint
from ecgfill.train.data import BatchSpec, full_batches
from ecgfill.train.loop import Dist, Trainer, make_card, pearson_per_record

COVARIANCE_BATCH = 512


class PlanCache:
    """Plan tensors per lead set, as numpy and as torch tensors on one device."""

    def __init__(self, covariance: dict[str, Any], lag: int, ridge: float, device: Any) -> None:
        self.covariance, self.lag, self.ridge, self.device = covariance, lag, ridge, device
        self._cache: dict[str, tuple[anyset.PlanTensors, dict[str, Any], Any]] = {}

    def get(self, plan: LeadPlan) -> tuple[anyset.PlanTensors, dict[str, Any], Any]:
        import torch

        if plan.key not in self._cache:
            tensors = anyset.plan_tensors(plan, self.covariance, self.lag, self.ridge)
            with torch.inference_mode(False):  # usable in training after validation made them
                self._cache[plan.key] = (tensors, anyset.torch_feed(tensors, self.device),
                                         torch.from_numpy(tensors.lift).to(self.device))
        return self._cache[plan.key]


def plan_inputs(x12: Any, plan: LeadPlan, lift: Any) -> Any:
    """Lifted measurements ``[b, 8, T]`` from 12-lead inputs ``[b, 12, T]``."""
    import torch

    measured = x12[:, anyset.measured_rows(plan)]
    return torch.einsum("ik,bkt->bit", lift, measured)


def objective_module(net: Any, cache: PlanCache, seed: int) -> Any:
    import torch
    from torch import nn

    class AnySetObjective(nn.Module):
        """Masked MSE (normalised) over the leads a randomly drawn layout leaves missing."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.rng = np.random.default_rng(seed)

        def forward(self, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            plan = anyset.sample_plan(self.rng)
            tensors, feed, lift = cache.get(plan)
            y = self.net(plan_inputs(x, plan, lift), **feed)
            missing = torch.from_numpy(1.0 - tensors.mask).to(y.device).reshape(1, -1, 1)
            weight = mask.unsqueeze(1).to(y.dtype) * missing
            err = ((y - t) / self.net.std) ** 2
            return (err * weight).sum() / weight.sum().clamp_min(1.0)

    return AnySetObjective()


class AnySetTrainer(Trainer):
    """The shared training loop with the any-subset family's data, loss and validation."""

    def batch_spec(self, window: int, multiple: int) -> BatchSpec:
        if self.options.input_leads not in ((), (anyset.ANY,)):
            raise UsageError("--arch anyset takes --input-leads any (it serves every subset)")
        self.input_leads = (anyset.ANY,)
        return BatchSpec(STANDARD_LEADS, INDEPENDENT_LEADS, window, multiple)

    def build_net(self) -> Any:
        return anyset.make_net(self.config, self.ds.lead_stats(), self.ds.fs)

    def closed_form(self) -> bool:
        return self.config.core == "none"

    def make_card(self, window: int) -> dict[str, Any]:
        """The shared card with the any-subset fields: input leads "any", all 8 outputs, the
        layouts it was trained on."""
        card = make_card(self.options, self.ds, self.net, self.config, window,
                         self.augment.describe(), flops=self._flops(window))
        card.update(
            input_leads=anyset.ANY, network_input_leads=anyset.ANY,
            output_leads=list(INDEPENDENT_LEADS), layouts={
                "mix": [[w, kind] for w, kind in anyset.LAYOUT_MIX],
                "shipped": [list(s) for s in anyset.SHIPPED_SETS],
                "device": [list(s) for s in anyset.DEVICE_SETS]},
            validation_sets=[",".join(s) for s in anyset.VALIDATION_SETS],
        )
        card["limitations"][0] = (
            f"Takes any combination of standard leads in mV at {self.ds.fs:g} Hz (resample other "
            "rates first) and predicts the independent leads they leave missing; measured leads "
            "are reproduced exactly and the limb leads follow by lead algebra.")
        card.pop("reference_unet", None)
        return card

    def _flops(self, window: int) -> float:
        """FLOPs per second of signal on a 3-lead plan (every plan costs the same)."""
        import torch

        net = self.net
        plan = LeadPlan.of(("I", "II", "V4"))
        stats = PlanCache(_zero_covariance(2 * net.lag), net.lag, 1.0, "cpu")
        tensors, feed, lift = stats.get(plan)

        class _OnePlan(torch.nn.Module):
            multiple = net.multiple

            def forward(self, x: torch.Tensor, noise: Any = None) -> torch.Tensor:
                return net(x, **feed)

        return flops_per_second(_OnePlan(), len(INDEPENDENT_LEADS), self.ds.fs, window)

    # -- the linear path: the lagged covariance ------------------------------------------

    def fit_linear_path(self) -> None:
        began = time.monotonic()
        rows = [LEAD_INDEX[n] for n in INDEPENDENT_LEADS]
        spec = BatchSpec(STANDARD_LEADS, STANDARD_LEADS, self.ds.n_samples, 1)
        batches = ((t[:, rows], mask) for _, t, mask in
                   full_batches(self.ds, self.train_idx, spec, COVARIANCE_BATCH))
        max_lag = 2 * self.net.lag
        self.card["covariance"] = anyset.lagged_covariance(batches, max_lag)
        self._log(f"lagged 8-lead covariance (±{max_lag} samples) of {len(self.train_idx)} "
                  f"records: {time.monotonic() - began:.1f} s")
        self._cache = None

    def run(self) -> Any:
        last = self.run_dir / "last.pt"
        if self.options.resume and last.is_file():
            self.card["covariance"] = load_checkpoint(last)["card"]["covariance"]
        elif not self.closed_form():
            self.fit_linear_path()
        return super().run()

    def plans(self) -> PlanCache:
        if getattr(self, "_cache", None) is None:
            self._cache = PlanCache(self.card["covariance"], self.net.lag, self.config.ridge,
                                    self.dist.device)
        return self._cache

    def objective(self) -> Any:
        return objective_module(self.net, self.plans(), self.options.seed)

    def validate(self, indices: np.ndarray, split: str = "val",
                 dist: Dist | None = None) -> dict[str, Any]:
        """Mean per-record r over each validation layout's missing leads; the run's ``r`` is
        the mean over layouts, ``r_chest`` the same over chest leads."""
        import torch

        dist = dist or self.dist
        if split == "train":  # a fit check only: every 10th training record
            indices = indices[::10]
        net = self.net
        per_set: dict[str, float | None] = {}
        per_set_chest: list[float] = []
        losses: list[float] = []
        net.eval()
        with torch.inference_mode():
            for leads in anyset.VALIDATION_SETS:
                plan = LeadPlan.of(leads)
                tensors, feed, lift = self.plans().get(plan)
                missing = [i for i, n in enumerate(INDEPENDENT_LEADS) if n in plan.predicted]
                chest = [i for i in missing if INDEPENDENT_LEADS[i] in CHEST_LEADS]
                sums = np.zeros(6)
                for x, t, mask in full_batches(self.ds, indices[dist.rank::dist.world],
                                               self.spec, self.options.batch_size):
                    xt, tt = (torch.from_numpy(a).to(dist.device) for a in (x, t))
                    mt = torch.from_numpy(mask).to(dist.device)
                    y = net(plan_inputs(xt, plan, lift), **feed)
                    r = pearson_per_record(y, tt, mt).cpu().numpy()
                    err = (((y - tt) / net.std) ** 2)[:, missing] * mt.unsqueeze(1)
                    sums[4] += float(err.sum())
                    sums[5] += float(mt.sum()) * len(missing)
                    for k, cols in enumerate((missing, chest)):
                        vals = r[:, cols] if cols else np.zeros((len(r), 0))
                        ok = np.isfinite(vals)
                        sums[2 * k] += np.where(ok, vals, 0).sum()
                        sums[2 * k + 1] += ok.sum()
                sums = dist.all_sum(sums)
                losses.append(sums[4] / max(sums[5], 1.0))
                per_set[plan.key] = round(float(sums[0] / sums[1]), 6) if sums[1] else None
                if sums[3]:
                    per_set_chest.append(float(sums[2] / sums[3]))
        net.train()
        values = [v for v in per_set.values() if v is not None]
        return {"split": split, "records": len(indices),
                "loss": round(float(np.mean(losses)), 6),
                "r": round(float(np.mean(values)), 6) if values else None,
                "r_chest": round(float(np.mean(per_set_chest)), 6) if per_set_chest else None,
                "r_per_lead": {}, "r_per_lead_set": per_set}


def _zero_covariance(max_lag: int) -> dict[str, Any]:
    """An identity covariance (for shapes and FLOP counts only)."""
    cov = np.zeros((len(INDEPENDENT_LEADS), len(INDEPENDENT_LEADS), 2 * max_lag + 1))
    cov[:, :, max_lag] = np.eye(len(INDEPENDENT_LEADS))
    return {"max_lag": max_lag, "mean": [0.0] * len(INDEPENDENT_LEADS), "cov": cov.tolist()}
