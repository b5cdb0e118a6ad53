"""Figures a clinician recognises: a 12-lead ECG on paper with truth and reconstruction overlaid,
and per-lead distributions of r and MAE. matplotlib is imported only here, when plotting.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.errors import EcgfillError
from ecgfill.evaluate.run import SCORED_ROLES, Evaluation, LeadRole
from ecgfill.leads import STANDARD_LEADS
from ecgfill.record import ECGRecord

# The standard printout: 25 mm/s, 10 mm/mV; four columns of 2.5 s, three rows, and lead II as a
# rhythm strip over the whole width.
MM_PER_S = 25.0
MM_PER_MV = 10.0
COLUMN_S = 2.5
GRID_ROWS: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
RHYTHM_LEAD = "II"
ROW_MM = 30.0
DPI = 150
PAPER = {"minor": "#f6c4c4", "major": "#e88a8a", "background": "#fff6f4"}
TRUTH_STYLE = {"color": "black", "linewidth": 0.7}
RECON_STYLES = (
    {"color": "#d62728", "linewidth": 0.7},
    {"color": "#1f77b4", "linewidth": 0.7},
)
ROLE_COLOURS = {"learned": "#d62728", "derived": "#ff7f0e", "mixed": "#7f7f7f"}


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend; EcgfillError when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise EcgfillError(
            "--plot needs matplotlib: pip install 'ecgfill[plot]'"
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def safe_filename(name: str) -> str:
    """A record name usable as one file name (path separators and odd characters replaced)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("/", "__")).strip("._") or "record"


def _paper(ax: Any, width_mm: float, height_mm: float) -> None:
    """ECG paper: 1 mm minor and 5 mm major grid, equal scale in both directions."""
    ax.set_facecolor(PAPER["background"])
    for step, colour, width in ((1.0, PAPER["minor"], 0.3), (5.0, PAPER["major"], 0.6)):
        for x in np.arange(0.0, width_mm + 1e-9, step):
            ax.axvline(x, color=colour, linewidth=width, zorder=0)
        for y in np.arange(0.0, height_mm + 1e-9, step):
            ax.axhline(y, color=colour, linewidth=width, zorder=0)
    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _trace(ax: Any, signal: np.ndarray, fs: float, start_s: float, x0_mm: float, y0_mm: float,
           seconds: float, style: dict[str, Any]) -> None:
    first, last = round(start_s * fs), round((start_s + seconds) * fs)
    segment = np.asarray(signal[first:last], dtype=np.float64)
    if segment.size == 0:
        return
    x = x0_mm + np.arange(segment.size) / fs * MM_PER_S
    ax.plot(x, y0_mm + segment * MM_PER_MV, **style, zorder=3)


def plot_twelve_lead(
    truth: ECGRecord,
    reconstructions: Sequence[tuple[str, ECGRecord]],
    path: str | Path,
    title: str = "",
    roles: dict[str, LeadRole] | None = None,
) -> Path:
    """Write a standard 12-lead printout of ``truth`` (black) with each reconstruction overlaid.

    Leads are labelled with their role (input, learned, derived, exact); the first 10 s are shown
    (less when the record is shorter). ``reconstructions`` are ``(label, record)`` with the 12
    standard leads at the truth's rate.
    """
    plt = pyplot()
    roles = roles or {}
    seconds = min(4 * COLUMN_S, truth.seconds)
    column_s = seconds / 4
    width_mm = 4 * column_s * MM_PER_S
    height_mm = ROW_MM * (len(GRID_ROWS) + 1)
    fig = plt.figure(figsize=(width_mm / 25.4 * 1.1, height_mm / 25.4 * 1.1 + 0.6), dpi=DPI)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.9))
    _paper(ax, width_mm, height_mm)
    signals = [(None, truth, TRUTH_STYLE)] + [
        (label, rec, RECON_STYLES[i % len(RECON_STYLES)])
        for i, (label, rec) in enumerate(reconstructions)
    ]
    def draw(lead: str, start_s: float, x0: float, y0: float, span_s: float) -> None:
        # Input and exact leads equal the truth by construction: only the truth is drawn.
        shown = signals if roles.get(lead, "learned") in SCORED_ROLES else signals[:1]
        for _, record, style in shown:
            if lead in record.leads:
                _trace(ax, record.lead(lead), record.fs, start_s, x0, y0, span_s, style)
        role = roles.get(lead)
        ax.text(x0 + 1.5, y0 + 0.35 * ROW_MM, lead + (f" ({role})" if role else ""),
                fontsize=7, zorder=4)

    for row, leads in enumerate(GRID_ROWS):
        for col, lead in enumerate(leads):
            draw(lead, col * column_s, col * column_s * MM_PER_S,
                 height_mm - (row + 0.5) * ROW_MM, column_s)
    draw(RHYTHM_LEAD, 0.0, 0.0, 0.5 * ROW_MM, seconds)
    handles = [plt.Line2D([], [], **TRUTH_STYLE, label="truth")] + [
        plt.Line2D([], [], **style, label=label) for label, _, style in signals[1:]
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.9)
    fig.suptitle(f"{title}   25 mm/s, 10 mm/mV", fontsize=9, x=0.02, ha="left")
    return save_figure(fig, plt, path)


def plot_distributions(evaluation: Evaluation, path: str | Path) -> Path:
    """Per-lead box plots of Pearson r and MAE (mV) over records, coloured by lead origin."""
    plt = pyplot()
    leads = [n for n in STANDARD_LEADS if any(n in s.metrics for s in evaluation.scores)]
    if not leads:
        raise EcgfillError("nothing to plot: no record was scored")
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 0.7 * len(leads) + 2), 6.5), sharex=True)
    for ax, metric, label in zip(axes, ("pearson_r", "mae_mv"), ("Pearson r", "MAE (mV)"),
                                 strict=True):
        data = []
        for lead in leads:
            values = np.array([s.metrics[lead][metric] for s in evaluation.scores
                               if lead in s.metrics], dtype=np.float64)
            data.append(values[np.isfinite(values)])
        boxes = ax.boxplot(data, patch_artist=True, showfliers=True, widths=0.6,
                           flierprops={"markersize": 2}, medianprops={"color": "black"})
        for patch, lead in zip(boxes["boxes"], leads, strict=True):
            origins = {s.roles[lead] for s in evaluation.scores if lead in s.metrics}
            origin = origins.pop() if len(origins) == 1 else "mixed"
            patch.set_facecolor(ROLE_COLOURS.get(origin, ROLE_COLOURS["mixed"]))
            patch.set_alpha(0.5)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(range(1, len(leads) + 1), leads)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.5, label=o)
               for o, c in ROLE_COLOURS.items() if o != "mixed"]
    axes[0].legend(handles=handles, fontsize=8, loc="lower left")
    title = evaluation.model or "reconstruction"
    fig.suptitle(f"{title}: per-lead distribution over {len(evaluation.scores)} records",
                 fontsize=10)
    fig.tight_layout()
    return save_figure(fig, plt, path)


def save_figure(fig: Any, plt: Any, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (folders made) and close it; EcgfillError naming the file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    except OSError as exc:
        raise EcgfillError(f"{path}: cannot write figure ({exc.strerror})") from None
    finally:
        plt.close(fig)
    return path


def write_plots(evaluations: Sequence[Evaluation], out_dir: str | Path) -> list[Path]:
    """Distribution plots of every evaluation and a 12-lead printout of each kept record
    (with every evaluation's reconstruction of it overlaid); returns the files written."""
    out = Path(out_dir)
    written: list[Path] = []
    for k, evaluation in enumerate(evaluations):
        if evaluation.scores:
            suffix = "" if k == 0 else f"_{k + 1}"
            written.append(plot_distributions(evaluation, out / f"distributions{suffix}.png"))
    primary = evaluations[0]
    roles = {s.name: s.roles for s in primary.scores}
    for name, (truth, recon) in primary.kept.items():
        overlays = [(primary.model or "reconstruction", recon)]
        for other in evaluations[1:]:
            if name in other.kept:
                overlays.append((other.model or "other", other.kept[name][1]))
        title = f"{name} — {primary.model or 'reconstruction'}"
        written.append(plot_twelve_lead(truth, overlays, out / f"ecg_{safe_filename(name)}.png",
                                        title, roles.get(name)))
    return written
