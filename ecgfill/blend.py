"""Overlap and blend, in one place: how a long signal is cut into overlapping pieces and how the
pieces' predictions are joined again without a step.

Two levels use it: a model cuts its input into windows (:func:`window_starts`, joined by
:func:`crossfade_weights` in :meth:`ecgfill.models.base.ReconstructionModel.predict`), and
``reconstruct`` streams long records in chunks with context on both sides (:func:`chunk_windows`,
joined by :class:`SeamBlender`). Every join is the same cross-fade (:func:`crossfade`): over the
overlap, the outgoing piece's weight falls as the incoming one's rises (:func:`ramp`), the two
summing to one at every sample, so a signal both pieces agree on passes through unchanged.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Shape = Literal["sine", "linear"]


def ramp(n: int, shape: Shape = "sine") -> np.ndarray:
    """Weights rising from 0 to 1 over ``n`` samples, taken at the samples' centres
    (``(k + 0.5) / n``): ``sine`` is sin², smooth at both ends; ``linear`` the plain line.
    ``1 - ramp`` is the matching fall."""
    centres = np.arange(n) + 0.5
    if shape == "sine":
        return (np.sin(0.5 * np.pi * centres / n) ** 2).astype(np.float32)
    return (centres / n).astype(np.float32)


def crossfade(outgoing: np.ndarray, incoming: np.ndarray, shape: Shape = "sine") -> np.ndarray:
    """``incoming`` with its first samples faded in from ``outgoing`` (time last): over the
    shorter of the two, ``ramp * incoming + (1 - ramp) * outgoing``; a copy."""
    out = np.array(incoming, copy=True)
    m = min(outgoing.shape[-1], incoming.shape[-1])
    if m:
        weight = ramp(m, shape)
        out[..., :m] = weight * incoming[..., :m] + (1 - weight) * outgoing[..., :m]
    return out


def window_starts(length: int, window: int) -> list[int]:
    """Starts of windows covering ``[0, length)``, overlapping by at least a quarter window;
    the last window ends exactly at ``length``."""
    if length <= window:
        return [0]
    hop = window - window // 4
    starts = list(range(0, length - window, hop))
    starts.append(length - window)
    return starts


def crossfade_weights(starts: list[int], window: int) -> list[np.ndarray]:
    """Per-window weights summing to one at every sample: each boundary is a sin²/cos²
    cross-fade of half the overlap, centred in the overlap, away from the window edges."""
    weights = []
    for k, start in enumerate(starts):
        w = np.ones(window, dtype=np.float32)
        if k > 0:
            lo, fade = _fade(starts[k - 1], start, window)
            w[:lo - start] = 0.0
            w[lo - start:lo - start + fade] = ramp(fade)
        if k + 1 < len(starts):
            lo, fade = _fade(start, starts[k + 1], window)
            w[lo - start:lo - start + fade] = 1.0 - ramp(fade)
            w[lo - start + fade:] = 0.0
        weights.append(w)
    return weights


def window_reach(marked: np.ndarray, window: int) -> np.ndarray:
    """Samples whose blended prediction (:func:`crossfade_weights` over :func:`window_starts`)
    takes part from a window that holds a ``marked`` sample: for a network that sees its whole
    window at once (self-attention), what a gap in its input can change."""
    n = marked.shape[-1]
    if n <= window:
        return np.full(n, bool(marked.any()))
    out = np.zeros(n, dtype=bool)
    starts = window_starts(n, window)
    held = np.concatenate([[0], np.cumsum(marked)])
    for start, weight in zip(starts, crossfade_weights(starts, window), strict=True):
        if held[start + window] > held[start]:
            out[start:start + window] |= weight > 0
    return out


def _fade(start_a: int, start_b: int, window: int) -> tuple[int, int]:
    """Absolute start and length of the fade between two overlapping windows."""
    overlap = start_a + window - start_b
    fade = max(1, overlap // 2)
    return start_b + (overlap - fade) // 2, fade


def chunk_windows(n: int, chunk: int, context: int) -> list[tuple[int, int, int, int]]:
    """``(read_start, read_stop, keep_start, keep_stop)`` of chunks covering ``[0, n)`` once:
    each keeps ``chunk`` samples and reads ``context`` more on each side."""
    out = []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        out.append((max(0, start - context), min(n, stop + context), start, stop))
    return out


class SeamBlender:
    """Joins the predictions of consecutive chunks: the first ``fade`` kept samples of a chunk
    are cross-faded (linear ramp) from the previous chunk's prediction of the same samples,
    which that chunk made from its right-hand context. Only the given rows are blended (measured
    leads are bit-identical in both chunks anyway)."""

    def __init__(self, fade: int) -> None:
        self.fade = max(1, fade)
        self.tails: dict[str, np.ndarray] = {}

    def blend(self, key: str, kept: np.ndarray, full: np.ndarray, rows: list[int],
              end: int) -> np.ndarray:
        """``kept`` (this chunk's kept samples) blended with the previous chunk's tail; remembers
        this chunk's prediction just past its kept part (``full[:, end:end + fade]``)."""
        tail = self.tails.get(key)
        if tail is not None and rows:
            kept = kept.copy()
            m = min(self.fade, kept.shape[1], tail.shape[1])
            kept[rows, :m] = crossfade(tail[rows, :m], kept[rows, :m], "linear")
        self.tails[key] = full[:, end : end + self.fade].copy()
        return kept
