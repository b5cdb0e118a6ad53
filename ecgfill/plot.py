"""Draw a record as the standard 12-lead printout on ECG paper: a 3 x 4 grid (I, II, III /
aVR, aVL, aVF / V1-V3 / V4-V6, each column a quarter of the window) and a lead II rhythm strip,
at 25 mm/s and 10 mm/mV on a 1 mm / 5 mm grid. Reconstructed leads are drawn in blue with their
label marked, their prediction band shaded when ``<name>_lower``/``<name>_upper`` records lie
beside the record; every trace is clipped to its own row; labels and the key sit outside the
traces. Needs matplotlib (imported lazily)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.errors import EcgfillError, RecordError

MM_PER_S = 25.0
MM_PER_MV = 10.0
ROW_MM = 30.0  # trace area of a row (±1.5 mV)
LABEL_MM = 5.0  # strip above each row's traces for the lead labels
GRID = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
RHYTHM = "II"
COLORS = {"measured": "black", "derived": "#444444", "reconstructed": "#1f4fbf"}
BAND_COLOR = "#7fa7ff"
BAND_ALPHA = 0.45


@dataclass
class Printout:
    """What one figure shows: the window of the record (and of its band records)."""

    record: Any
    lower: Any | None
    upper: Any | None
    start: float
    name: str


def band_records(path: Path) -> tuple[Path, Path] | None:
    """The ``_lower``/``_upper`` record files beside ``path`` (same format), when both exist."""
    base = path.with_suffix("")
    pair = tuple(base.with_name(base.name + s).with_suffix(path.suffix)
                 for s in ("_lower", "_upper"))
    return pair if all(p.is_file() for p in pair) else None  # type: ignore[return-value]


def is_band_record(path: Path) -> bool:
    """Whether ``path`` is the ``_lower``/``_upper`` record of a record beside it."""
    stem = path.with_suffix("").name
    for suffix in ("_lower", "_upper"):
        if stem.endswith(suffix):
            main = path.with_name(stem[: -len(suffix)] + path.suffix)
            return main.is_file()
    return False


def _read(path: Path, start: float, seconds: float | None) -> Any:
    from ecgfill.io import open_record

    with open_record(path) as reader:
        lo = min(max(0, int(round(start * reader.fs))), max(reader.n_samples - 1, 0))
        span = reader.n_samples - lo if seconds is None else int(round(seconds * reader.fs))
        hi = min(reader.n_samples, lo + max(1, span))
        return reader.read(lo, hi)


def load(path: str | Path, start: float = 0.0, seconds: float = 10.0) -> Printout:
    """The window ``[start, start + seconds)`` of the record at ``path`` and of its band."""
    path = Path(path)
    if start < 0 or seconds <= 0:
        raise EcgfillError("--start must be >= 0 and --seconds > 0")
    record = _read(path, start, seconds)
    if record.n_samples < 2:
        raise RecordError(path, f"nothing to draw from {start:g} s (the record is shorter)")
    lower = upper = None
    pair = band_records(path)
    if pair is not None:
        lower, upper = (_read(p, start, seconds) for p in pair)
    return Printout(record, lower, upper, start, path.with_suffix("").name)


def _paper(ax: Any, width: float, height: float) -> None:
    from matplotlib.collections import LineCollection

    for step, color, lw in ((1.0, "#f6c9c9", 0.3), (5.0, "#e88f8f", 0.7)):
        segments = [((x, 0), (x, height)) for x in np.arange(0, width + 1e-6, step)]
        segments += [((0, y), (width, y)) for y in np.arange(0, height + 1e-6, step)]
        ax.add_collection(LineCollection(segments, colors=color, linewidths=lw, zorder=0))


def _trace(ax: Any, out: Printout, lead: str, t0: float, t1: float, x0: float,
           y_mid: float, clip: Any) -> None:
    rec = out.record
    if lead not in rec.leads:
        ax.text(x0 + 1, y_mid, "(not recorded)", fontsize=6, color="#888888", va="center")
        return
    i = rec.leads.index(lead)
    lo, hi = int(round(t0 * rec.fs)), min(rec.n_samples, int(round(t1 * rec.fs)) + 1)
    if hi - lo < 2:
        return
    x = x0 + (np.arange(lo, hi) / rec.fs - t0) * MM_PER_S
    origin = rec.origins[i]
    if out.lower is not None and out.upper is not None and lead in out.lower.leads:
        low = out.lower.lead(lead)[lo:hi]
        up = out.upper.lead(lead)[lo:hi]
        if np.nanmax(up - low, initial=0) > 0:
            band = ax.fill_between(x, y_mid + low * MM_PER_MV, y_mid + up * MM_PER_MV,
                                   color=BAND_COLOR, alpha=BAND_ALPHA, lw=0, zorder=2)
            band.set_clip_path(clip)
    (line,) = ax.plot(x, y_mid + rec.signal[i, lo:hi] * MM_PER_MV, lw=0.7,
                      color=COLORS.get(origin, "black"), zorder=3, gid=f"trace {lead}")
    line.set_clip_path(clip)


def figure(out: Printout) -> Any:
    """The matplotlib figure of the printout of ``out`` (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rec = out.record
    seconds = rec.n_samples / rec.fs
    col_s = seconds / 4
    width = seconds * MM_PER_S
    row_h = ROW_MM + LABEL_MM
    rows = len(GRID) + 1
    height = rows * row_h
    header_mm = 14.0
    fig = plt.figure(figsize=((width + 10) / 25.4, (height + header_mm + 6) / 25.4), dpi=150)
    ax = fig.add_axes((5 / (width + 10), 6 / (height + header_mm + 6),
                       width / (width + 10), height / (height + header_mm + 6)))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    _paper(ax, width, height)
    origins = dict(zip(rec.leads, rec.origins, strict=True))
    layout = [(r, c, lead, c * col_s, (c + 1) * col_s, c * col_s * MM_PER_S, col_s * MM_PER_S)
              for r, names in enumerate(GRID) for c, lead in enumerate(names)]
    layout.append((len(GRID), 0, RHYTHM, 0.0, seconds, 0.0, width))
    for r, _, lead, t0, t1, x0, w in layout:
        bottom = height - (r + 1) * row_h
        clip = Rectangle((x0, bottom), w, ROW_MM, transform=ax.transData)
        _trace(ax, out, lead, t0, t1, x0, bottom + ROW_MM / 2, clip)
        origin = origins.get(lead)
        label = lead + (" (reconstructed)" if origin == "reconstructed" else
                        " (derived)" if origin == "derived" else "")
        ax.text(x0 + 1, bottom + ROW_MM + LABEL_MM / 2, label + (" rhythm" if r == len(GRID)
                                                                   else ""),
                fontsize=6, va="center", color=COLORS.get(origin or "", "black"),
                fontweight="bold" if origin == "reconstructed" else "normal")
        if r < len(GRID) and x0 > 0:
            ax.plot([x0, x0], [bottom + ROW_MM * 0.3, bottom + ROW_MM * 0.7], color="black",
                    lw=0.6, zorder=4)
    band = ""
    if out.lower is not None:
        level = next((c.split(" prediction interval")[0].split("of the ")[-1]
                      for c in out.lower.comments if "prediction interval" in c), "")
        band = f"; shaded: {level} prediction interval (0.5 Hz high-passed band)".replace(
            "  ", " ")
    model = f"; model {rec.model}" if rec.model else ""
    fig.text(0.01, 1 - 3 / (height + header_mm + 6) * 1.2,
             f"{out.name}  {out.start:g}-{out.start + seconds:g} s  {rec.fs:g} Hz{model}",
             fontsize=8, va="top")
    fig.text(0.01, 1 - 9 / (height + header_mm + 6) * 1.2,
             "25 mm/s, 10 mm/mV; black: measured, grey: derived, blue: reconstructed" + band,
             fontsize=7, va="top")
    return fig


def draw(out: Printout, png: str | Path) -> Path:
    """Write the printout of ``out`` to ``png`` (atomically); returns the path."""
    import matplotlib.pyplot as plt

    fig = figure(out)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(png.name + ".tmp.png")
    fig.savefig(tmp, dpi=150)
    plt.close(fig)
    tmp.replace(png)
    return png


def plot_record(path: str | Path, out_dir: str | Path, start: float = 0.0,
                seconds: float = 10.0) -> Path:
    """Draw the record at ``path`` into ``out_dir/<name>.png``."""
    printout = load(path, start, seconds)
    return draw(printout, Path(out_dir) / f"{printout.name}.png")
