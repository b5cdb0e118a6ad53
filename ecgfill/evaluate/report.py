"""The evaluation report: one JSON object, rich tables on stderr and per-record CSV rows.

JSON report (``ecgfill evaluate --json`` prints it as one line on stdout)
-------------------------------------------------------------------------
A *stats* object is ``{"mean", "median", "ci95": [lo, hi], "n"}`` over records: ``ci95`` is the
percentile bootstrap 95% interval of the mean (``--bootstrap`` resamples, ``--seed``); a value is
``null`` when it cannot be computed (``ci95`` needs two records). Signals are compared in mV.

``"leads"``: scored lead name -> ``{"origin", "n", "pearson_r", "mae_mv", "rmse_mv", "snr_db",
"prd_pct", "r2", "amp_ratio", "high_band_r", "high_energy_ratio"}``, each metric a *stats*
object over records (the last two only for references at 250 Hz or more). Only learned and
derived leads appear: ``origin`` is ``"learned"`` (predicted by the model), ``"derived"`` (a limb
lead computed from at least one predicted lead) or ``"mixed"`` (folders whose records differ).
Input leads and limb leads computed from measured leads only (``"exact"``) are never scored.
Metrics: ``pearson_r``; ``mae_mv`` and ``rmse_mv``; ``prd_pct`` = 100·‖error‖/‖truth − mean‖;
``snr_db`` = −20·log10(PRD/100), capped at 100 dB; ``r2`` = 1 − SSE/SST; ``amp_ratio`` =
reconstructed ÷ true QRS peak-to-peak (median over beats; < 1 means shrunk towards the mean);
``high_band_r`` = r of the 40-150 Hz band; ``high_energy_ratio`` = reconstructed ÷ true energy
from 50 to 150 Hz (both ``null`` below 250 Hz).

``"summary"``:
  ``learned_leads``, ``chest_leads``, ``derived_leads``, ``missing_leads``: metric -> *stats*,
  where each record first contributes its mean over its learned leads (its learned chest leads
  V1-V6; its derived leads; all the leads it lacked, learned and derived together); ``null``
  when there are no such leads. ``n_records`` (scored), ``n_failed``, ``model``
  (name and version; for folders the models named in the headers), ``input_leads`` (list, or
  ``null`` when records differ), ``learned``/``derived``/``exact`` (lead lists), ``mode``
  (``records``, ``dataset`` or ``folders``), ``reference``, ``split``, ``bootstrap``, ``seed``,
  ``reference_highpass`` (the models' input high-pass, e.g. ``{"cutoff_hz": 0.5, ...}``, that
  record references went through before scoring, and that a dataset was preprocessed with;
  ``null`` for none).

``"features"`` (left out with ``--no-features``): clinical features measured the same way on
truth and reconstruction over matched beats: ``hr_bpm``, ``pr_ms``, ``qrs_ms``, ``qt_ms``,
``p_amp_mv``, ``t_amp_mv``.
  ``tolerances``: feature -> clinical tolerance of the absolute error.
  ``global``: all 12 leads delineated together, as an ECG machine reports intervals.
  ``leads``: scored lead -> feature -> *feature stats*; ``learned_leads`` and ``derived_leads``
  pool every (record, lead) pair of that kind.
  ``beats``: ``matched``, ``missed`` (truth beats without a reconstructed one) and ``extra``
  over the scored leads.
  A *feature stats* object: ``abs_error`` (*stats* of \\|reconstruction − truth\\|), ``bias``
  (mean signed error), ``within_tolerance`` (share of pairs within the tolerance, ``null`` for
  amplitudes), ``n`` (pairs measured on both), ``unmeasured`` (share of pairs measurable on the
  truth but not on the reconstruction), ``reference_unmeasured`` (pairs not measurable on the
  truth, left out).

``"comparison"`` (with ``--compare``): ``model`` (the other model), ``leads`` (lead -> metric ->
*paired*), ``summary`` (``learned_leads``/``chest_leads``/``derived_leads`` -> metric ->
*paired*) and ``report`` (the other model's own ``leads``, ``summary`` and ``features``). A
*paired* object is over records scored by both: ``{"mean_diff", "median_diff", "ci95", "n",
"wilcoxon_p", "cohens_d"}``, differences being this model minus the other.

``"diagnostic"`` (with ``--diagnostic``; see :mod:`ecgfill.evaluate.diagnostic`): the shipped
12-lead classifier on the labelled records, three ways: ``real`` (the references), ``reconstructed``
and ``input_only`` (the input leads with every other lead zeroed).
  ``macro_auroc``: set -> macro AUROC (mean over the classes NORM, MI, STTC, CD, HYP);
  ``macro_auroc_ci95``: set -> percentile-bootstrap 95% interval (records resampled, paired).
  ``per_class``: class -> ``{"real", "reconstructed", "input_only", "ci95": {set: [lo, hi]},
  "delta": {"reconstructed"|"input_only": {"value", "ci95"}}, "n_positive"}``.
  ``delta_macro_auroc``: ``reconstructed``/``input_only`` -> ``{"value", "ci95"}``, minus real.
  ``non_inferior``: lower bound of the reconstructed − real macro ΔAUROC interval > −``margin``
  (0.05); ``null`` without bootstrap. ``fid``: Fréchet distance between the classifier's
  penultimate features on real and reconstructed records (``fid_input_only``: real vs input only).
  ``n_labelled`` (records used), ``n_left_out`` (``unlabelled``: no row in the label file or no
  ecg_id in the name; ``no_superclass``: no diagnostic superclass), ``classifier``, ``classes``,
  ``labels``, ``label_rule``, ``bootstrap``, ``seed``. With ``--compare`` the other model's block
  is ``comparison.report.diagnostic``.

``"failures"``: ``[{"record", "error"}]`` for references that could not be evaluated.

CSV (``--csv FILE``): one row per record, model and scored lead (plus a ``global`` row per record
with the global features): ``record, model, lead, origin``, the seven metrics, and per feature
``<feature>_truth`` and ``<feature>_recon``.

rich is imported inside the functions that render tables (start-up time).
"""

from __future__ import annotations

import csv
import math
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.errors import EcgfillError
from ecgfill.evaluate.diagnostic import render_diagnostic
from ecgfill.evaluate.features import FEATURES, TOLERANCES
from ecgfill.evaluate.metrics import (
    DEFAULT_BOOTSTRAP,
    SIGNAL_METRICS,
    json_safe,
    paired_comparison,
    summarize,
)
from ecgfill.evaluate.run import GLOBAL_ROW, Evaluation, RecordScore
from ecgfill.leads import CHEST_LEADS, STANDARD_LEADS

GROUPS: tuple[str, ...] = ("learned_leads", "chest_leads", "derived_leads", "missing_leads")


def _group_leads(score: RecordScore, group: str) -> list[str]:
    if group == "learned_leads":
        return score.leads_with("learned")
    if group == "chest_leads":
        return [n for n in score.leads_with("learned") if n in CHEST_LEADS]
    if group == "missing_leads":
        missing = {*score.leads_with("learned"), *score.leads_with("derived")}
        return [n for n in STANDARD_LEADS if n in missing]
    return score.leads_with("derived")


def _seeded(seed: int, *parts: str) -> int:
    """A per-quantity seed: every statistic gets its own reproducible bootstrap stream."""
    return (seed * 1_000_003 + zlib.crc32("/".join(parts).encode())) % (2**32)


def _scored_leads(scores: Sequence[RecordScore]) -> dict[str, str]:
    """Scored lead -> its origin over the records (``mixed`` when records disagree)."""
    origins: dict[str, set[str]] = {}
    for s in scores:
        for lead in s.metrics:
            origins.setdefault(lead, set()).add(s.roles[lead])
    return {
        lead: origins[lead].pop() if len(origins[lead]) == 1 else "mixed"
        for lead in STANDARD_LEADS if lead in origins
    }


def _lead_values(scores: Sequence[RecordScore], lead: str, metric: str) -> np.ndarray:
    return np.array([s.metrics[lead][metric] for s in scores if lead in s.metrics])


def _group_values(scores: Sequence[RecordScore], group: str, metric: str) -> np.ndarray:
    return np.array([s.mean_over(_group_leads(s, group), metric) for s in scores])


def lead_report(evaluation: Evaluation, n_boot: int, seed: int) -> dict[str, Any]:
    """The ``"leads"`` object."""
    out: dict[str, Any] = {}
    for lead, origin in _scored_leads(evaluation.scores).items():
        entry: dict[str, Any] = {
            "origin": origin,
            "n": sum(lead in s.metrics for s in evaluation.scores),
        }
        for metric in SIGNAL_METRICS:
            values = _lead_values(evaluation.scores, lead, metric)
            entry[metric] = summarize(values, n_boot, _seeded(seed, lead, metric))
        out[lead] = entry
    return out


def summary_report(evaluation: Evaluation, n_boot: int, seed: int) -> dict[str, Any]:
    """The ``"summary"`` object."""
    scores = evaluation.scores
    out: dict[str, Any] = {}
    for group in GROUPS:
        if not any(_group_leads(s, group) for s in scores):
            out[group] = None
            continue
        out[group] = {
            metric: summarize(_group_values(scores, group, metric), n_boot,
                              _seeded(seed, group, metric))
            for metric in SIGNAL_METRICS
        }
    roles = {role: sorted({n for s in scores for n in s.leads_with(role)},
                          key=STANDARD_LEADS.index)
             for role in ("learned", "derived", "exact")}
    input_sets = {s.input_leads for s in scores}
    input_leads = evaluation.input_leads
    if input_leads is None and len(input_sets) == 1:
        input_leads = next(iter(input_sets))
    out |= {
        "n_records": len(scores),
        "n_failed": len(evaluation.failures),
        "model": evaluation.model,
        "input_leads": list(input_leads) if input_leads is not None else None,
        **roles,
        "mode": evaluation.mode,
        "reference": evaluation.reference,
        "split": evaluation.split,
        "reference_highpass": getattr(evaluation, "reference_highpass", None),
        "bootstrap": n_boot,
        "seed": seed,
    }
    return out


def _feature_stats(
    truth: np.ndarray, recon: np.ndarray, feature: str, n_boot: int, seed: int
) -> dict[str, Any]:
    measurable = np.isfinite(truth)
    both = measurable & np.isfinite(recon)
    error = recon[both] - truth[both]
    tolerance = TOLERANCES.get(feature)
    return {
        "abs_error": summarize(np.abs(error), n_boot, seed),
        "bias": float(error.mean()) if error.size else None,
        "within_tolerance": float(np.mean(np.abs(error) <= tolerance))
        if tolerance is not None and error.size else None,
        "n": int(both.sum()),
        "unmeasured": float(1.0 - both.sum() / measurable.sum()) if measurable.any() else None,
        "reference_unmeasured": int((~measurable).sum()),
    }


def _feature_pairs(
    rows: Sequence[tuple[RecordScore, str]], feature: str
) -> tuple[np.ndarray, np.ndarray]:
    pairs = [s.features[row][feature] for s, row in rows if row in s.features]
    if not pairs:
        return np.array([]), np.array([])
    values = np.array(pairs, dtype=np.float64)
    return values[:, 0], values[:, 1]


def feature_report(evaluation: Evaluation, n_boot: int, seed: int) -> dict[str, Any] | None:
    """The ``"features"`` object (None when no record carries features)."""
    scores = [s for s in evaluation.scores if s.features]
    if not scores:
        return None

    def block(rows: list[tuple[RecordScore, str]], label: str) -> dict[str, Any] | None:
        if not rows:
            return None
        return {
            f: _feature_stats(*_feature_pairs(rows, f), f, n_boot,
                              _seeded(seed, "features", label, f))
            for f in FEATURES
        }

    leads = _scored_leads(scores)
    beats = np.array([s.beats[n] for s in scores for n in s.metrics if n in s.beats])
    return {
        "tolerances": dict(TOLERANCES),
        "global": block([(s, GLOBAL_ROW) for s in scores], GLOBAL_ROW),
        "leads": {lead: block([(s, lead) for s in scores], lead) for lead in leads},
        "learned_leads": block([(s, n) for s in scores for n in s.leads_with("learned")],
                               "learned"),
        "derived_leads": block([(s, n) for s in scores for n in s.leads_with("derived")],
                               "derived"),
        "beats": dict(zip(("matched", "missed", "extra"),
                          (int(v) for v in beats.sum(axis=0)) if beats.size else (0, 0, 0),
                          strict=True)),
    }


def comparison_report(
    primary: Evaluation, other: Evaluation, n_boot: int, seed: int
) -> dict[str, Any]:
    """The ``"comparison"`` object: ``primary`` minus ``other`` on the records both scored."""
    theirs = {s.name: s for s in other.scores}
    pairs = [(s, theirs[s.name]) for s in primary.scores if s.name in theirs]

    def paired(a: list[float], b: list[float], *parts: str) -> dict[str, Any]:
        return paired_comparison(np.array(a), np.array(b), n_boot, _seeded(seed, *parts))

    leads: dict[str, Any] = {}
    for lead in _scored_leads([a for a, _ in pairs]):
        both = [(a, b) for a, b in pairs if lead in a.metrics and lead in b.metrics]
        leads[lead] = {
            m: paired([a.metrics[lead][m] for a, _ in both], [b.metrics[lead][m] for _, b in both],
                      "compare", lead, m)
            for m in SIGNAL_METRICS
        }
    summary: dict[str, Any] = {}
    for group in GROUPS:
        if not any(_group_leads(a, group) for a, _ in pairs):
            summary[group] = None
            continue
        summary[group] = {
            m: paired([a.mean_over(_group_leads(a, group), m) for a, _ in pairs],
                      [b.mean_over(_group_leads(b, group), m) for _, b in pairs],
                      "compare", group, m)
            for m in SIGNAL_METRICS
        }
    return {
        "model": other.model,
        "difference": "this model minus the compared model, paired by record",
        "n_records": len(pairs),
        "leads": leads,
        "summary": summary,
        "report": {
            "leads": lead_report(other, n_boot, seed),
            "summary": summary_report(other, n_boot, seed),
            "features": feature_report(other, n_boot, seed),
        },
    }


def build_report(
    evaluation: Evaluation,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    compare: Evaluation | None = None,
) -> dict[str, Any]:
    """The whole JSON report of ``evaluation`` (see the module docstring); JSON-safe."""
    report: dict[str, Any] = {
        "leads": lead_report(evaluation, n_boot, seed),
        "summary": summary_report(evaluation, n_boot, seed),
    }
    features = feature_report(evaluation, n_boot, seed)
    if features is not None:
        report["features"] = features
    if compare is not None:
        report["comparison"] = comparison_report(evaluation, compare, n_boot, seed)
    report["failures"] = [{"record": name, "error": error} for name, error in evaluation.failures]
    return json_safe(report)


# ------------------------------------------------------------------------------------------
# CSV


def csv_columns(features: bool) -> list[str]:
    columns = ["record", "model", "lead", "origin", *SIGNAL_METRICS]
    if features:
        columns += [f"{f}_{side}" for f in FEATURES for side in ("truth", "recon")]
    return columns


def csv_rows(evaluations: Sequence[Evaluation]) -> Iterator[dict[str, Any]]:
    """Per-record rows of every evaluation (see the module docstring)."""
    for evaluation in evaluations:
        for s in evaluation.scores:
            for lead in [*s.metrics, *([GLOBAL_ROW] if GLOBAL_ROW in s.features else [])]:
                row: dict[str, Any] = {
                    "record": s.name,
                    "model": s.model or evaluation.model or "",
                    "lead": lead,
                    "origin": s.roles.get(lead, "all"),
                }
                for m in SIGNAL_METRICS:
                    row[m] = s.metrics.get(lead, {}).get(m)
                for f, (truth, recon) in s.features.get(lead, {}).items():
                    row[f"{f}_truth"], row[f"{f}_recon"] = truth, recon
                yield {k: _csv_value(v) for k, v in row.items()}


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else ""
    return "" if value is None else value


def write_csv(path: str | Path, evaluations: Sequence[Evaluation]) -> int:
    """Write :func:`csv_rows` to ``path`` (atomically); returns the number of rows."""
    path = Path(path)
    features = any(s.features for e in evaluations for s in e.scores)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=csv_columns(features), lineterminator="\n",
                                    restval="")
            writer.writeheader()
            for row in csv_rows(evaluations):
                writer.writerow(row)
                count += 1
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise EcgfillError(f"{path}: cannot write CSV ({exc.strerror})") from None
    return count


# ------------------------------------------------------------------------------------------
# Rich tables


METRIC_LABELS = {
    "pearson_r": ("r", 3), "mae_mv": ("MAE mV", 3), "rmse_mv": ("RMSE mV", 3),
    "snr_db": ("SNR dB", 1), "prd_pct": ("PRD %", 1), "r2": ("R²", 3),
    "amp_ratio": ("amp ratio", 2), "high_band_r": ("r", 3),
    "high_energy_ratio": ("energy ratio", 2),
}
HIGH_BAND_METRICS: tuple[str, ...] = ("high_band_r", "high_energy_ratio")
FEATURE_LABELS = {
    "hr_bpm": ("HR", "bpm", 1), "pr_ms": ("PR", "ms", 0), "qrs_ms": ("QRS", "ms", 0),
    "qt_ms": ("QT", "ms", 0), "p_amp_mv": ("P amp", "mV", 3), "t_amp_mv": ("T amp", "mV", 3),
}


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _metric_cells(block: dict[str, Any], metrics: list[str]) -> list[str]:
    """Mean of each metric, with the r confidence interval in a cell of its own."""
    cells = []
    for metric in metrics:
        stats, digits = block[metric], METRIC_LABELS[metric][1]
        cells.append(_fmt(stats["mean"], digits))
        if metric == "pearson_r":
            ci = stats["ci95"]
            cells.append(f"{_fmt(ci[0], digits)}–{_fmt(ci[1], digits)}" if ci else "–")
    return cells


def _metric_table(title: str, rows: list[tuple[str, str, dict[str, Any]]], metrics: list[str],
                  n_leads: int) -> Any:
    """Per-lead rows, then the group means in bold; r (when shown) with its 95% CI."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("lead")
    table.add_column("origin")
    for metric in metrics:
        table.add_column(METRIC_LABELS[metric][0], justify="right")
        if metric == "pearson_r":
            table.add_column("r 95% CI", justify="right")
    for k, (name, origin, block) in enumerate(rows):
        if k == n_leads:
            table.add_section()
        table.add_row(name, origin, *_metric_cells(block, metrics),
                      style="bold" if k >= n_leads else None)
    return table


def render_tables(report: dict[str, Any]) -> list[Any]:
    """Rich renderables for a report: per-lead and summary metrics, features, comparison."""

    summary = report["summary"]
    title = (f"{summary.get('model') or 'reconstruction'} — inputs "
             f"{','.join(summary.get('input_leads') or []) or 'mixed'} — "
             f"{summary['n_records']} records" + (f", {summary['n_failed']} failed"
                                                   if summary["n_failed"] else ""))
    rows = [(lead, entry["origin"], entry) for lead, entry in report["leads"].items()]
    groups = [(g.replace("_leads", ""), "mean", summary.get(g)) for g in GROUPS]
    rows += [g for g in groups if g[2]]
    main = [m for m in SIGNAL_METRICS if m not in HIGH_BAND_METRICS]
    table = _metric_table(title, rows, main, len(report["leads"]))
    out: list[Any] = [table]
    if any(block[m]["mean"] is not None for _, _, block in rows for m in HIGH_BAND_METRICS):
        out.append(_metric_table("high band (records at 250 Hz or more): r of 40-150 Hz, "
                                 "reconstructed ÷ true energy 50-150 Hz", rows,
                                 list(HIGH_BAND_METRICS), len(report["leads"])))
    if summary.get("exact"):
        out.append(f"exact (from measured leads, not scored): {', '.join(summary['exact'])}")
    if report.get("features"):
        out.append(_feature_table(report["features"]))
    if report.get("comparison"):
        out.append(_comparison_table(report["comparison"]))
    if report.get("diagnostic"):
        out.extend(render_diagnostic(report["diagnostic"]))
    return out


def _feature_table(features: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="clinical features: mean |reconstruction − truth|, share within the "
                        "tolerance, share not measurable on the reconstruction",
                  title_justify="left")
    table.add_column("feature")
    table.add_column("tol", justify="right")
    blocks = [(n, features.get(n)) for n in ("global", "learned_leads", "derived_leads")]
    blocks = [(n, b) for n, b in blocks if b]
    for name, _ in blocks:
        label = name.replace("_leads", "")
        table.add_column(f"{label} |err|", justify="right")
        table.add_column("within", justify="right")
        table.add_column("unmeas.", justify="right")
    for f in FEATURES:
        label, unit, digits = FEATURE_LABELS[f]
        tol = TOLERANCES.get(f)
        cells = [f"{label} ({unit})", f"{tol:g}" if tol else "–"]
        for _, block in blocks:
            stats = block[f]
            cells += [
                _fmt(stats["abs_error"]["mean"], digits),
                _percent(stats["within_tolerance"]),
                _percent(stats["unmeasured"]),
            ]
        table.add_row(*cells)
    return table


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.0f}%"


def _comparison_table(comparison: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"paired difference, this model − {comparison['model']} "
                        f"({comparison['n_records']} records)", title_justify="left")
    table.add_column("leads")
    for metric in ("pearson_r", "mae_mv"):
        label = METRIC_LABELS[metric][0]
        table.add_column(f"Δ{label}", justify="right")
        table.add_column("95% CI", justify="right")
        table.add_column("p", justify="right")
        table.add_column("d", justify="right")
    rows = [(g.replace("_", " "), comparison["summary"].get(g)) for g in GROUPS]
    rows += list(comparison["leads"].items())
    for name, block in rows:
        if not block:
            continue
        cells = []
        for metric in ("pearson_r", "mae_mv"):
            paired, digits = block[metric], METRIC_LABELS[metric][1]
            ci = paired["ci95"]
            cells += [
                _fmt(paired["mean_diff"], digits),
                f"{_fmt(ci[0], digits)}, {_fmt(ci[1], digits)}" if ci else "–",
                "–" if paired["wilcoxon_p"] is None else f"{paired['wilcoxon_p']:.2g}",
                _fmt(paired["cohens_d"], 2),
            ]
        table.add_row(name, *cells)
    return table


def print_report(report: dict[str, Any]) -> None:
    """The report's tables and failures on stderr."""
    from rich.markup import escape

    from ecgfill.console import stderr

    for renderable in render_tables(report):
        stderr.print(renderable)
    for failure in report.get("failures", [])[:20]:
        stderr.print(f"[red]failed:[/] {escape(failure['record'])}: {escape(failure['error'])}",
                     markup=True, highlight=False)
    hidden = len(report.get("failures", [])) - 20
    if hidden > 0:
        stderr.print(f"... and {hidden} more failures (see --json)")
