"""What is wrong with a signal, in one place: the one definition of a flat lead
(:func:`is_flat`) and of a clipped one (:func:`clipped_level`), used by the readers, the
warnings of ``reconstruct``/``derive-limb`` and the flags of ``preprocess`` alike.

The readers report NaN samples and flat leads (:func:`quality_warnings`, in ``record.warnings``);
:func:`clinical_warnings` looks at the signal itself: clipping at the recorder's limits, leads
that are flat (electrode off) for seconds, strong baseline wander, amplitudes no heart produces
(usually wrong units), records too short to hold a heartbeat, and a sampling rate far from the
model's. :class:`QualityScan` says both about a whole record read in pieces (``reconstruct``
streams long records in chunks).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ecgfill.dsp import nan_runs, true_runs
from ecgfill.record import ECGRecord

AMPLITUDE_LIMIT_MV = 10.0  # beyond this from the baseline, a sample is not cardiac
FLAT_MV = 0.02  # peak-to-peak below 20 µV: no ECG (an electrode is off or the lead is zeroed)
FLAT_BLOCK_SECONDS = 0.5  # flatness is judged on blocks this long ...
FLAT_STRETCH_SECONDS = 2.0  # ... and reported when it lasts this long (no pause is this long)
WANDER_LIMIT_MV = 1.5  # baseline excursion within one window: ST levels are lost in it
WANDER_WINDOW_SECONDS = 10.0
BASELINE_RATE_HZ = 50.0  # the baseline is estimated on a signal averaged down to about this rate
BASELINE_MEDIANS_SECONDS = (0.2, 0.6)  # two median filters: remove QRS, then P and T waves
CLIP_MIN_SECONDS = 0.02  # a plateau at the extreme this long (and at least 4 samples) ...
CLIP_MIN_SAMPLES = 4
CLIP_PILE_UP = 2.0  # ... holding more samples than the band just inside it
CLIP_BAND = 0.02  # that band: the top (or bottom) 2 % of the lead's range
CLIP_EXCURSION = 0.25  # the extreme lies at least this share of the range from the median
CLIP_MIN_LEVEL_MV = 1.0  # and at least this far: no recorder's limit lies closer to the baseline
CLIP_EDGE_SECONDS = 0.5  # left out at both ends, where recorders often hold the last value
MIN_SECONDS = 2.0  # shorter records may not hold two heartbeats
FS_FACTOR = 2.0  # a record rate below the model's by this factor is worth a warning
# Measured leads carrying band (up to the diagnostic 150 Hz) beyond this factor of the top of
# the reconstructed band are worth a warning.
BAND_FACTOR = 1.5
DIAGNOSTIC_TOP_HZ = 150.0


def is_flat(row: np.ndarray) -> bool:
    """True when the lead's finite samples span less than :data:`FLAT_MV` (False without any)."""
    finite = row[np.isfinite(row)]
    return bool(finite.size) and float(finite.max() - finite.min()) < FLAT_MV


def flat_text(span: float) -> str:
    """How a flat lead is described, from its peak-to-peak (mV)."""
    return f"is flat (peak-to-peak {1000 * span:.0f} µV)"


def quality_warnings(signal: np.ndarray, leads: tuple[str, ...] | list[str]) -> list[str]:
    """Per-lead problems every reader reports: NaN samples, all-NaN and flat leads."""
    out: list[str] = []
    for name, row in zip(leads, signal, strict=True):
        finite = row[np.isfinite(row)]
        span = float(finite.max() - finite.min()) if finite.size else None
        out.extend(_reader_lines(name, row.size, finite.size, span))
    return out


def _reader_lines(name: str, total: int, finite: int, span: float | None,
                  gaps: str = "") -> list[str]:
    """The readers' lines about one lead of ``total`` samples, ``finite`` of them finite and
    spanning ``span`` mV; ``gaps`` describes its gaps."""
    if total and not finite:
        return [f"lead {name} has no finite samples"]
    nan = total - finite
    out = [f"lead {name} has {nan} non-finite samples ({100 * nan / total:.1f}%){gaps}"] if nan else []
    if span is not None and span < FLAT_MV:
        out.append(f"lead {name} {flat_text(span)}: electrode off?")
    return out


def clinical_warnings(record: ECGRecord, model_fs: float | None = None) -> list[str]:
    """Clinically relevant warnings about ``record``, one line each, without those the reader
    already put in ``record.warnings``. ``model_fs`` adds a check of the sampling rate.
    (:class:`QualityScan` says the same about a record read in pieces.)"""
    scan = QualityScan(record.leads, record.fs, record.n_samples)
    scan.add(record.signal)
    return [w for w in scan.clinical_warnings(model_fs) if w not in record.warnings]


class QualityScan:
    """What :func:`quality_warnings` (the readers' lines) and :func:`clinical_warnings` say,
    about a whole record read in consecutive pieces, in bounded memory (a few numbers per
    lead), with every duration and time in seconds of the record. :meth:`add` the pieces in
    order, without overlap.

    Flat stretches and gaps (runs of non-finite samples) are followed across pieces; clipping
    is judged per piece (a piece holds minutes of signal) and its held samples are summed;
    baseline wander and amplitude are the largest of any piece. ``short_gap_ms``: gaps up to
    this long are interpolated in a model's input (:meth:`reader_warnings`).
    """

    def __init__(self, leads: tuple[str, ...] | list[str], fs: float, n_samples: int,
                 short_gap_ms: float = 0.0) -> None:
        self.leads, self.fs, self.n_samples = tuple(leads), float(fs), int(n_samples)
        self.short_gap_ms = short_gap_ms
        self.short_gap = gap_samples(short_gap_ms, fs)
        self.seen = 0
        self._lead = [_LeadScan(round(FLAT_BLOCK_SECONDS * fs)) for _ in self.leads]

    def add(self, signal: np.ndarray) -> None:
        """The next ``[leads, samples]`` piece of the record."""
        edges = (self.seen == 0, self.seen + signal.shape[1] >= self.n_samples)
        for state, row in zip(self._lead, signal, strict=True):
            state.add(np.asarray(row, dtype=np.float64), self.seen, self.fs, edges,
                      self.short_gap)
        self.seen += signal.shape[1]

    def reader_warnings(self, leads: tuple[str, ...] | None = None,
                        gaps: tuple[str, ...] = ()) -> list[str]:
        """The readers' lines (:func:`quality_warnings`: non-finite samples, all-NaN and flat
        leads) for the whole record; ``leads``: only about these. For the leads in ``gaps``
        (those a model's reconstruction reads) the non-finite samples are described as gaps:
        how many, the longest and where, and what reconstruction makes of them (gaps up to
        ``short_gap`` samples are interpolated in the model's input; longer ones leave the
        leads computed from this one NaN there too)."""
        out: list[str] = []
        for name, state in self._states(leads):
            span = state.high - state.low if state.finite else None
            gap_text = self._gap_text(state.gaps) if name in gaps and state.gaps.any else ""
            out.extend(_reader_lines(name, state.total, state.finite, span, gap_text))
        return out

    def _gap_text(self, gaps: _Gaps) -> str:
        gaps = gaps.closed(self.short_gap)
        length, start = gaps.longest
        limit = f"{self.short_gap_ms:g} ms"
        text = (f" in {gaps.count} gap{'s' if gaps.count > 1 else ''}, the longest "
                f"{_seconds(length / self.fs)} at {_seconds(start / self.fs)}")
        if not gaps.long:
            return text + f": up to {limit} each, interpolated in the model's input"
        text += ": the leads computed from it are NaN there too"
        short = gaps.count - gaps.long
        return text + (f" ({short} up to {limit}: interpolated in the model's input)" if short
                       else "")

    def clinical_warnings(self, model_fs: float | None = None,
                          leads: tuple[str, ...] | None = None,
                          top_hz: float | None = None) -> list[str]:
        """The clinical warnings (:func:`clinical_warnings`) for the whole record; ``leads``:
        only about these; ``top_hz``: the top of the band reconstructed leads carry."""
        out: list[str] = []
        seconds = self.n_samples / self.fs
        if seconds < MIN_SECONDS:
            out.append(f"record lasts only {seconds:.2f} s: too short to hold two heartbeats")
        for name, state in self._states(leads):
            if state.finite < 2:
                continue
            if state.dead:  # the readers' words (so it is not repeated)
                out.append(f"lead {name} {state.dead}: electrode off?")
                continue
            blocks, first = state.longest_flat
            if blocks * state.block / self.fs >= FLAT_STRETCH_SECONDS:
                out.append(f"lead {name} is flat for {blocks * state.block / self.fs:.1f} s of "
                           f"{seconds:.1f} s (from {_seconds(first * state.block / self.fs)}): "
                           "electrode off?")
            if state.clipped:
                level, held = max(state.clipped.items(), key=lambda item: item[1])
                out.append(f"lead {name} looks clipped at {level:.3g} mV "
                           f"({_seconds(held / self.fs)} held at the limit): peaks are cut off "
                           "and amplitudes unreliable")
            if state.wander > WANDER_LIMIT_MV:
                out.append(f"lead {name} has strong baseline wander ({state.wander:.1f} mV "
                           f"within {WANDER_WINDOW_SECONDS:g} s): ST levels are unreliable")
            if state.amplitude > AMPLITUDE_LIMIT_MV:
                out.append(f"lead {name} reaches {state.amplitude:.1f} mV from its baseline, "
                           "beyond what a heart produces (wrong units in the file, or an "
                           "artefact?)")
        if model_fs is not None:
            out.extend(_rate_warnings(self.fs, model_fs, top_hz))
        return out

    def _states(self, leads: tuple[str, ...] | None) -> list[tuple[str, _LeadScan]]:
        return [(name, state) for name, state in zip(self.leads, self._lead, strict=True)
                if leads is None or name in leads]


def gap_samples(ms: float, fs: float) -> int:
    """The most samples at ``fs`` a gap of at most ``ms`` milliseconds holds."""
    return int(np.floor(ms * fs / 1000.0 + 1e-9))


def _seconds(value: float) -> str:
    """A duration or a time in the record, to a useful precision."""
    if value < 10:
        return f"{value:.2f} s"
    return f"{value:.1f} s" if value < 1000 else f"{value:.0f} s"


@dataclass
class _Gaps:
    """Runs of non-finite samples of one lead: closed runs counted, the last one maybe open."""

    count: int = 0
    long: int = 0  # runs longer than the short-gap limit
    longest: tuple[int, int] = (0, 0)  # (length, start)
    open: tuple[int, int] | None = None  # (start, length) of a run reaching the piece's end

    def add(self, row: np.ndarray, offset: int, short_gap: int) -> None:
        runs = nan_runs(row)
        if self.open is not None and (not runs or runs[0][0] > 0):
            self._close(*self.open, short_gap)
            self.open = None
        for start, stop in runs:
            begin, length = offset + start, stop - start
            if start == 0 and self.open is not None:
                begin, length = self.open[0], self.open[1] + stop
                self.open = None
            if stop == row.size:
                self.open = (begin, length)
            else:
                self._close(begin, length, short_gap)

    @property
    def any(self) -> bool:
        return bool(self.count or self.open)

    def closed(self, short_gap: int) -> _Gaps:
        """The counts with a run still open at the end closed."""
        out = replace(self, open=None)
        if self.open is not None:
            out._close(*self.open, short_gap)
        return out

    def _close(self, start: int, length: int, short_gap: int) -> None:
        self.count += 1
        self.long += length > short_gap
        if length > self.longest[0]:
            self.longest = (length, start)


class _LeadScan:
    """One lead's running figures for :class:`QualityScan`."""

    def __init__(self, block: int) -> None:
        self.block = max(1, block)
        self.total = self.finite = 0
        self.low, self.high = np.inf, -np.inf
        self.pending = np.zeros(0)  # samples short of a whole flat-judging block
        self.blocks = 0  # blocks judged so far
        self.run = 0  # flat blocks in a row at the end so far
        self.longest_flat = (0, 0)  # (blocks, first block)
        self.clipped: dict[float, int] = {}  # level -> samples held there
        self.wander = 0.0
        self.amplitude = 0.0
        self.gaps = _Gaps()

    @property
    def dead(self) -> str | None:
        """Why the lead carries no signal so far (no finite sample, or flat), or None."""
        if not self.finite:
            return "has no finite samples"
        return flat_text(self.high - self.low) if self.high - self.low < FLAT_MV else None

    def add(self, row: np.ndarray, offset: int, fs: float, edges: tuple[bool, bool],
            short_gap: int) -> None:
        finite = np.isfinite(row)
        n_finite = int(np.count_nonzero(finite))
        self.total += row.size
        self.finite += n_finite
        self.gaps.add(row, offset, short_gap)
        self._flat_blocks(row)
        if not n_finite:
            return
        self.low = min(self.low, float(row[finite].min()))
        self.high = max(self.high, float(row[finite].max()))
        if n_finite < 2:
            return
        clipped = clipped_level(row, fs, edges)
        if clipped is not None:
            level, held = clipped
            self.clipped[level] = self.clipped.get(level, 0) + held
        baseline = _baseline(np.where(finite, row, float(np.median(row[finite]))), fs)
        self.wander = max(self.wander, _largest_wander(baseline, fs))
        self.amplitude = max(self.amplitude, float(np.nanmax(np.abs(row - baseline))))

    def _flat_blocks(self, row: np.ndarray) -> None:
        """Follow the longest run of flat blocks (blocks without data never count); blocks
        lie at whole multiples of the block length from the record's start."""
        data = np.concatenate([self.pending, row]) if self.pending.size else row
        n_blocks = data.size // self.block
        self.pending = data[n_blocks * self.block:].copy()
        if not n_blocks:
            return
        blocks = data[: n_blocks * self.block].reshape(n_blocks, self.block)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(blocks).any(axis=1)
            safe = np.where(valid[:, None], blocks, 0.0)
            span = np.nanmax(safe, axis=1) - np.nanmin(safe, axis=1)
        carried = self.run
        runs = true_runs(valid & (span < FLAT_MV))
        for start, stop in runs:
            extra = carried if start == 0 else 0
            if stop - start + extra > self.longest_flat[0]:
                self.longest_flat = (stop - start + extra, self.blocks + start - extra)
        at_end = runs and runs[-1][1] == n_blocks
        self.run = n_blocks - runs[-1][0] + (carried if runs[-1][0] == 0 else 0) if at_end else 0
        self.blocks += n_blocks


def clipped_level(row: np.ndarray, fs: float,
                  ends: tuple[bool, bool] = (True, True)) -> tuple[float, int] | None:
    """(level, samples) when the lead piles up at one extreme the way a clipped signal does.

    A clipped lead holds its extreme value for many samples while passing quickly through the
    values just inside it; a natural peak is the reverse. Extremes near the median are the
    baseline (e.g. a noise-free isoelectric line), not a limit; the record's ends, where
    recorders often hold the last value, are left out (``ends``: whether ``row`` begins and
    ends where the record does).
    """
    edge = round(CLIP_EDGE_SECONDS * fs)
    inner = row
    if row.size > 4 * edge:
        inner = row[edge if ends[0] else 0 : row.size - edge if ends[1] else row.size]
    x = inner[np.isfinite(inner)]
    if x.size < 2:
        return None
    low, high = float(x.min()), float(x.max())
    span = high - low
    median = float(np.median(x))
    tolerance = 1e-6 * max(abs(low), abs(high), 1.0)
    needed = max(CLIP_MIN_SAMPLES, round(CLIP_MIN_SECONDS * fs))
    for level in (high, low):
        if abs(level - median) < max(CLIP_EXCURSION * span, CLIP_MIN_LEVEL_MV):
            continue
        distance = np.abs(x - level)
        held = int(np.count_nonzero(distance <= tolerance))
        inside = int(np.count_nonzero((distance > tolerance) & (distance <= CLIP_BAND * span)))
        if held >= needed and held > CLIP_PILE_UP * inside:
            return level, held
    return None


def _baseline(row: np.ndarray, fs: float) -> np.ndarray:
    """The baseline under the ECG at every sample: block means down to about 50 Hz, a 200 ms
    then a 600 ms median filter, and linear interpolation back."""
    from scipy.ndimage import median_filter

    step = max(1, int(fs // BASELINE_RATE_HZ))
    n_blocks = max(1, row.size // step)
    coarse = row[: n_blocks * step].reshape(n_blocks, -1).mean(axis=1)
    rate = fs / step
    for seconds in BASELINE_MEDIANS_SECONDS:
        size = 2 * round(seconds * rate / 2) + 1
        coarse = median_filter(coarse, size=size, mode="nearest")
    centres = (np.arange(n_blocks) + 0.5) * step - 0.5
    return np.interp(np.arange(row.size), centres, coarse)


def _largest_wander(baseline: np.ndarray, fs: float) -> float:
    """Largest peak-to-peak excursion of the baseline within any window (half-window steps),
    leaving out the ends, where the median filters see only part of a beat."""
    margin = round(sum(BASELINE_MEDIANS_SECONDS) / 2 * fs)
    if baseline.size > 4 * margin:
        baseline = baseline[margin:-margin]
    window = max(1, round(WANDER_WINDOW_SECONDS * fs))
    starts = range(0, max(1, baseline.size - window // 2), max(1, window // 2))
    return max(float(np.ptp(baseline[s : s + window])) for s in starts)


def _rate_warnings(fs: float, model_fs: float, top_hz: float | None = None) -> list[str]:
    """Warnings when the reconstructed leads lack band the record has: a rate far below the
    model's, or (``top_hz``, the top of the reconstructed band; the model's Nyquist frequency
    when not given) measured leads carrying diagnostic band (up to 150 Hz) far above it."""
    if fs * FS_FACTOR < model_fs:
        return [f"sampled at {fs:g} Hz, far below the model's {model_fs:g} Hz: the reconstruction "
                f"cannot show detail above {fs / 2:g} Hz"]
    top = model_fs / 2 if top_hz is None else top_hz
    measured_top = min(fs / 2, DIAGNOSTIC_TOP_HZ)
    if measured_top > BAND_FACTOR * top:
        return [f"sampled at {fs:g} Hz, above the model's {model_fs:g} Hz: reconstructed leads "
                f"carry nothing above {top:g} Hz, unlike the measured ones (up to "
                f"{measured_top:g} Hz)"]
    return []
