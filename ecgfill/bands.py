"""``reconstruct --interval``: the ``<name>_lower`` and ``<name>_upper`` records written beside
an output record, chunk by chunk as it streams, and the per-record ``expected_r`` and
``interval`` summaries of its JSON (see :mod:`ecgfill.intervals`)."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.errors import ModelError, RecordError
from ecgfill.leads import STANDARD_LEADS, LeadPlan

SUFFIXES = ("_lower", "_upper")


def band_paths(output: str | Path) -> tuple[Path, Path]:
    """``<output>_lower`` and ``<output>_upper`` (record bases, no suffix)."""
    return tuple(Path(str(output) + s) for s in SUFFIXES)  # type: ignore[return-value]


def check_level(level: float | None) -> None:
    """ValueError unless ``level`` is None or in (0, 1)."""
    if level is not None and not 0.0 < level < 1.0:
        raise ValueError(f"--interval must be a level in (0, 1), e.g. 0.9; got {level:g}")


class Bands:
    """One record's interval output. ``level`` None: no band records, but ``expected_r`` is
    still reported when the model's card is calibrated. A model without calibration fails the
    record (before anything is written) only when ``level`` is given."""

    def __init__(self, output: str | Path | None, fmt: str, n_samples: int,
                 level: float | None, model: Any, leads: tuple[str, ...] | None,
                 source: str = "?") -> None:
        from ecgfill.intervals import PlanCalibration, RecordIntervals, load_partner

        self.output, self.fmt, self.n, self.level = output, fmt, n_samples, level
        self.tracker = None
        self._stack = ExitStack()
        self.writers: list[Any] = []
        if model is None or leads is None:
            return
        try:
            calibration = PlanCalibration.of(model.card, LeadPlan.of(leads))
        except ModelError as exc:
            if level is not None:
                raise RecordError(source, str(exc)) from None
            return
        self.tracker = RecordIntervals(calibration, model, level,
                                       load_partner(calibration, model))

    def __enter__(self) -> Bands:
        from ecgfill.io import open_writer

        if self.level is not None and self.output is not None:
            self.writers = [self._stack.enter_context(open_writer(p, self.fmt, self.n))
                            for p in band_paths(self.output)]
        return self

    def __exit__(self, *exc: Any) -> bool:
        return bool(self._stack.__exit__(*exc))

    def write(self, record: Any, keep: slice, seams: Any, end: int, piece: Any) -> None:
        """Add one chunk: ``record`` the completed chunk (with context), ``piece`` its kept
        part as written (already blended at the seam)."""
        half = self.tracker.chunk(record, keep) if self.tracker is not None else None
        if not self.writers:
            return
        full = record.in_standard_order()
        if half is None:
            half = np.zeros((len(STANDARD_LEADS), record.n_samples), dtype=np.float32)
        order = [STANDARD_LEADS.index(n) for n in full.leads]
        half = half[order]
        rows = [i for i, o in enumerate(full.origins) if o != "measured"]
        kept = seams.blend("interval", half[:, keep], half, rows, end)
        # a lead the measurements give exactly has width 0: lower = upper = the signal
        for writer, sign in zip(self.writers, (-1.0, 1.0), strict=True):
            writer.write(replace(piece, signal=(piece.signal + sign * kept).astype(np.float32),
                                 comments=[*piece.comments, self._comment(sign)],
                                 warnings=[]))

    def _comment(self, sign: float) -> str:
        side = "lower" if sign < 0 else "upper"
        return (f"{side} bound of the {self.level:g} prediction interval of the reconstructed "
                "leads, 0.5 Hz high-passed band; measured and exactly derived leads: the signal")

    def summary(self) -> dict[str, Any]:
        """``expected_r`` and ``interval`` for the record's JSON (empty when uncalibrated)."""
        if self.tracker is None:
            return {"expected_r": None, "interval": None} if self.level is not None else {
                "expected_r": None}
        out = self.tracker.summary()
        if self.level is not None and self.output is not None:
            out["interval"]["outputs"] = [str(p) for p in band_paths(self.output)]
        return out
