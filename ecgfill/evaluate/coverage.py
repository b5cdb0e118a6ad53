"""Coverage of the prediction intervals (``ecgfill evaluate --interval``, and the calibration
script's held-out check): per lead the share of true samples inside the interval, the mean
width, coverage within QRS complexes vs elsewhere, and the width of a constant band per lead
reaching the same coverage (how much the adaptive band saves).

References and reconstructions are compared in the band the models reconstruct (0.5 Hz
high-passed)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ecgfill.leads import STANDARD_LEADS, LeadPlan, expand_independent

QRS_HALF_S = 0.06  # a sample within 60 ms of a beat's steepest point counts as QRS
BATCH = 256


def qrs_mask(truth: np.ndarray, fs: float) -> np.ndarray:
    """``[N, T]``: samples within :data:`QRS_HALF_S` of a beat detected on the true 12 leads."""
    from ecgfill.evaluate.features import detect_r_peaks

    mask = np.zeros((truth.shape[0], truth.shape[-1]), dtype=bool)
    half = int(round(QRS_HALF_S * fs))
    for i, rec in enumerate(truth):
        for beat in detect_r_peaks(np.nan_to_num(rec), fs):
            mask[i, max(0, beat - half): beat + half + 1] = True
    return mask


def complete_dataset(model: Any, plan: LeadPlan, truth: np.ndarray) -> np.ndarray:
    """``[N, 12, T]`` float32: records ``truth`` ``[N, 12, T]`` (at the model's rate) masked to
    ``plan``'s measurements, predicted by ``model`` and completed by the lead plan, as
    ``ecgfill reconstruct`` does."""
    rows = [STANDARD_LEADS.index(n) for n in model.input_leads]
    inputs = [STANDARD_LEADS.index(n) for n in plan.inputs]
    out = np.empty(truth.shape, dtype=np.float32)
    for lo in range(0, len(truth), BATCH):
        block = np.asarray(truth[lo:lo + BATCH], dtype=np.float32)
        predicted = model.predict(block[:, rows])
        independent = plan.complete(block[:, inputs], dict(zip(
            model.output_leads, np.asarray(predicted).transpose(1, 0, 2), strict=True)))
        out[lo:lo + BATCH] = expand_independent(independent)
    return out


def model_scales(calibration: Any, out12: np.ndarray, truth: np.ndarray, plan: LeadPlan,
                 model: Any) -> np.ndarray:
    """``[N, n_uncertain, T]`` scales of ``calibration`` for completed records ``out12``."""
    from ecgfill.dsp import apply_filters

    inputs = [STANDARD_LEADS.index(n) for n in plan.inputs]
    out = []
    for lo in range(0, len(out12), BATCH):
        x = apply_filters(np.asarray(truth[lo:lo + BATCH, inputs]), model.fs,
                          getattr(model, "input_filters", None))
        out.append(calibration.scales(out12[lo:lo + BATCH], x, model.fs))
    return np.concatenate(out)


class CoverageTally:
    """Counts per level and lead over any number of batches."""

    def __init__(self, leads: Sequence[str], levels: Iterable[float]) -> None:
        self.leads = list(leads)
        self.levels = [float(v) for v in levels]
        shape = (len(self.levels), len(self.leads))
        self.inside = np.zeros(shape)
        self.inside_qrs = np.zeros(shape)
        self.width = np.zeros(shape)
        self.n = np.zeros(len(self.leads))
        self.n_qrs = np.zeros(len(self.leads))
        self.abs_res: list[np.ndarray] = []

    def add(self, truth: np.ndarray, pred: np.ndarray, scale: np.ndarray,
            multipliers: Sequence[np.ndarray], qrs: np.ndarray) -> None:
        """``truth``, ``pred``, ``scale`` ``[N, L, T]``; ``multipliers`` per level ``[L]``;
        ``qrs`` ``[N, T]``. Non-finite samples are left out."""
        res = np.abs(np.asarray(truth, np.float64) - pred)
        valid = np.isfinite(res) & np.isfinite(scale)
        q = np.broadcast_to(qrs[:, None, :], res.shape) & valid
        self.n += valid.sum(axis=(0, 2))
        self.n_qrs += q.sum(axis=(0, 2))
        for k, mult in enumerate(multipliers):
            half = scale * np.asarray(mult)[None, :, None]
            hit = (res <= half) & valid
            self.inside[k] += hit.sum(axis=(0, 2))
            self.inside_qrs[k] += (hit & q).sum(axis=(0, 2))
            self.width[k] += np.where(valid, 2 * half, 0).sum(axis=(0, 2))
        self.abs_res.append(np.where(valid, res, np.nan).transpose(1, 0, 2).reshape(
            len(self.leads), -1)[:, ::7])

    def report(self) -> dict[str, Any]:
        """Per level: overall and per-lead coverage, mean width, QRS/elsewhere coverage and the
        constant band per lead with the same coverage (its mean width, and the ratio)."""
        res = np.concatenate(self.abs_res, axis=1) if self.abs_res else None
        out: dict[str, Any] = {"leads": self.leads, "samples": int(self.n.sum()), "levels": {}}
        n, nq = np.maximum(self.n, 1), np.maximum(self.n_qrs, 1)
        for k, level in enumerate(self.levels):
            cover = self.inside[k] / n
            other = (self.inside[k] - self.inside_qrs[k]) / np.maximum(self.n - self.n_qrs, 1)
            width = self.width[k] / n
            const = np.array([2 * np.nanquantile(res[j], min(cover[j], 1.0)) if res is not None
                              else np.nan for j in range(len(self.leads))])
            total_w = float((self.width[k]).sum() / n.sum())
            const_w = float((const * self.n).sum() / n.sum())
            out["levels"][f"{level:g}"] = {
                "coverage": round(float(self.inside[k].sum() / n.sum()), 4),
                "mean_width_mv": round(total_w, 4),
                "constant_width_mv": round(const_w, 4),
                "width_ratio": round(total_w / const_w, 3) if const_w > 0 else None,
                "coverage_qrs": round(float(self.inside_qrs[k].sum() / nq.sum()), 4),
                "coverage_other": round(float((self.inside[k] - self.inside_qrs[k]).sum()
                                              / max((self.n - self.n_qrs).sum(), 1)), 4),
                "per_lead": {lead: {
                    "coverage": round(float(cover[j]), 4),
                    "mean_width_mv": round(float(width[j]), 4),
                    "constant_width_mv": round(float(const[j]), 4),
                    "coverage_qrs": round(float(self.inside_qrs[k, j] / nq[j]), 4),
                    "coverage_other": round(float(other[j]), 4),
                } for j, lead in enumerate(self.leads)},
            }
        return out


def format_report(report: dict[str, Any], title: str) -> str:
    """The coverage report as a text table."""
    lines = [f"{title} (0.5 Hz high-passed band; {report['samples']} learned-lead samples)"]
    for level, block in report["levels"].items():
        lines.append(
            f"level {level}: coverage {block['coverage']:.3f} (QRS {block['coverage_qrs']:.3f}, "
            f"elsewhere {block['coverage_other']:.3f}), mean width {block['mean_width_mv']:.3f} mV"
            f" vs constant band {block['constant_width_mv']:.3f} mV (ratio "
            f"{block['width_ratio']})")
        lines.append(f"  {'lead':<5} {'cover':>6} {'QRS':>6} {'other':>6} {'width':>7} "
                     f"{'const':>7}")
        for lead, row in block["per_lead"].items():
            lines.append(f"  {lead:<5} {row['coverage']:>6.3f} {row['coverage_qrs']:>6.3f} "
                         f"{row['coverage_other']:>6.3f} {row['mean_width_mv']:>7.3f} "
                         f"{row['constant_width_mv']:>7.3f}")
    return "\n".join(lines)


def _add_batch(tally: CoverageTally, model: Any, plan: LeadPlan, calibration: Any,
               truth: np.ndarray, levels: Sequence[float]) -> None:
    out12 = complete_dataset(model, plan, truth)
    scale = model_scales(calibration, out12, truth, plan, model)
    rows = [STANDARD_LEADS.index(n) for n in calibration.leads]
    tally.add(truth[:, rows], out12[:, rows], scale,
              [calibration.multipliers(v) for v in levels], qrs_mask(truth, model.fs))


def interval_report(references: Sequence[str], model: Any, leads: Sequence[str],
                    split: str | None, level: float, limit: int | None = None) -> dict[str, Any]:
    """``ecgfill evaluate --interval``: coverage of ``model`` (bound to the measured ``leads``)
    on a dataset directory's ``split`` (whole records) or on complete reference records, both
    taken to the model's rate and, for records, through the model's high-pass (the band the
    intervals bound). ModelError when the model's card has no calibration."""
    from ecgfill.dsp import apply_filters, resample
    from ecgfill.errors import EcgfillError
    from ecgfill.intervals import PlanCalibration

    plan = LeadPlan.of(leads)
    calibration = PlanCalibration.of(model.card, plan)
    tally = CoverageTally(list(calibration.leads), [level])
    if len(references) == 1 and _is_dataset(references[0]):
        from ecgfill.train.data import open_dataset

        ds = open_dataset(references[0])
        idx = ds.indices(split) if split else np.arange(len(ds.n_valid))
        idx = idx[ds.n_valid[idx] == ds.n_samples][:limit]
        for lo in range(0, len(idx), BATCH):
            truth = np.asarray(ds.signals[idx[lo:lo + BATCH]], dtype=np.float32)
            if abs(ds.fs - model.fs) > 1e-9:
                truth = resample(truth, ds.fs, model.fs)
            _add_batch(tally, model, plan, calibration, truth, [level])
    else:
        from ecgfill.evaluate.run import complete_reference
        from ecgfill.io import discover, read_record

        items = [i for i in discover.find_records(list(references)) if not i.error][:limit]
        for item in items:
            try:
                ref = complete_reference(read_record(item.path), item.path).in_standard_order()
            except EcgfillError:
                continue  # ``evaluate`` reports it
            truth = ref.signal if abs(ref.fs - model.fs) < 1e-9 else resample(
                ref.signal, ref.fs, model.fs)
            truth = apply_filters(np.nan_to_num(truth), model.fs, model.input_filters)
            _add_batch(tally, model, plan, calibration, truth[None], [level])
    return tally.report()


def _is_dataset(path: str) -> bool:
    from ecgfill.evaluate.run import is_dataset_dir

    return is_dataset_dir(path)


def print_interval(references: Sequence[str], model: Any, leads: Sequence[str],
                   split: str | None, level: float, limit: int | None) -> dict[str, Any]:
    """The ``evaluate --interval`` block: printed on stderr, returned for the JSON report."""
    from ecgfill import console
    from ecgfill.errors import EcgfillError, ModelError

    try:
        block = interval_report(references, model, leads, split, level, limit)
    except ModelError as exc:
        raise EcgfillError(f"--interval: {exc}") from None
    console.info(format_report(block, f"prediction intervals of {model.name}, leads "
                                      f"{LeadPlan.of(leads).key}"))
    return block
