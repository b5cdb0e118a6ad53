"""The high band: what reconstructed leads carry above the 100 Hz models' band.

The reconstruction models run at 100 Hz, so their predictions, brought back to a record's rate,
stop at the resampler's pass band (:func:`low_path_top_hz`, 47.5 Hz). Diagnostic bandwidth
reaches 150 Hz (QRS notching, slurring, fragmentation live in 40-150 Hz). A two-band design
restores it: the 100 Hz model keeps the low band, and this model adds the **high band** of
every reconstructed lead, i.e. exactly the part of a signal that the round trip through the
low model's rate removes (:func:`high_band`, so the two bands are complementary by
construction), low-passed at :data:`TOP_HZ` or the record's Nyquist frequency.

The model is linear and serves any lead set, like ``linear-any``: its weight file holds the
lagged covariance of the 8 independent leads' high band over the 500 Hz training records, and
the ridge of the missing leads on the measured ones is solved in closed form for a record's
lead plan (:func:`ecgfill.models.anyset.subset_ridge`). Two steps on top, both fixed in the
card: the prediction is concentrated in time where the measured leads are steep (QRS; a ridge
also passes the measured leads' noise on the baseline, where the missing leads' high band is
near zero) and multiplied by a constant that gives back the energy the gate takes from the
training records' predictions (a share computed per record would give back, concentrated on
the QRS, the very noise the gate removed from a noisy record), and each lead's prediction is scaled by
``sqrt(true variance / predicted variance)`` (from the covariance, at most :data:`GAIN_CAP`),
so that notches keep their amplitude instead of the ridge's shrunken mean.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ecgfill.dsp import ANTIALIAS_TRANSITION, fit_length, highpass_in, lowpass, resample
from ecgfill.errors import ModelError
from ecgfill.leads import INDEPENDENT_LEADS, LeadPlan

HIGH_BAND_FORMAT = "ecgfill-high-band"
TOP_HZ = 150.0  # top of diagnostic ECG bandwidth (IEC 60601-2-25, AHA)
TOP_ORDER = 4  # the Butterworth low-pass at TOP_HZ
GAIN_CAP = 2.5  # a lead's high band is never scaled up by more than this
MIN_GAIN = 1.0
KERNEL_SECONDS = 2.0  # span over which the band split's impulse response is measured


def low_path_top_hz(low_fs: float) -> float:
    """Top of the band a model at ``low_fs`` carries back to a higher rate: the resampler's
    pass band edge (47.5 Hz at 100 Hz)."""
    return (1.0 - ANTIALIAS_TRANSITION / 2) * low_fs / 2


def low_edge_hz(input_filters: dict[str, Any] | None) -> float:
    """Bottom of the band a model reconstructs: its input high-pass cutoff, or 0."""
    highpass = highpass_in(input_filters)
    return highpass.cutoff_hz if highpass else 0.0


def reconstructed_band(fs: float, model_fs: float, input_filters: dict[str, Any] | None,
                       with_high_band: bool) -> list[float]:
    """``[low, top]`` Hz: the band reconstructed leads carry at a record rate ``fs``, from the
    model's input high-pass to the model's band at its rate (or the high band's top)."""
    low = low_edge_hz(input_filters)
    if with_high_band:
        return [low, band_top_hz(fs)]
    if abs(fs - model_fs) < 1e-9:
        return [low, model_fs / 2]
    return [low, min(low_path_top_hz(model_fs), low_path_top_hz(fs))]


def card_bandwidth(fs: float, input_filters: dict[str, Any] | None) -> dict[str, Any]:
    """What a model card says about the band a model at ``fs`` reconstructs."""
    low = low_edge_hz(input_filters)
    return {
        "at_model_rate_hz": [low, fs / 2],
        "at_higher_rates_hz": [low, low_path_top_hz(fs)],
        "with_high_band_hz": [low, TOP_HZ],
        "note": f"above {fs:g} Hz the model's band stops at {low_path_top_hz(fs):g} Hz; "
                "reconstruct adds the high band up to 150 Hz (or 0.95 x the input's Nyquist) "
                "from the high-band model (highband-any) unless --no-high-band",
    }


def band_top_hz(fs: float) -> float:
    """Top of the high band at a record rate ``fs``: :data:`TOP_HZ` or just below Nyquist."""
    return min(TOP_HZ, low_path_top_hz(fs))


def high_band(x: np.ndarray, fs: float, low_fs: float) -> np.ndarray:
    """The part of ``x`` ``[..., samples]`` at ``fs`` that a round trip through ``low_fs``
    removes, low-passed at :func:`band_top_hz`; float64. Zero when ``fs`` <= ``low_fs``."""
    x = np.asarray(x, dtype=np.float64)
    if fs <= low_fs * (1 + 1e-9):
        return np.zeros_like(x)
    band = x - fit_length(resample(resample(x, fs, low_fs), low_fs, fs), x.shape[-1])
    top = band_top_hz(fs)
    return lowpass(band, fs, top, order=TOP_ORDER).astype(np.float64) if top < fs / 2 else band


def lagged_apply(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``[outputs, T]``: the Conv1d (cross-correlation, 'same' padding) of ``x`` ``[k, T]`` with
    ``weight`` ``[outputs, k, K]`` plus ``bias``, as torch computes it, in numpy."""
    taps, n = weight.shape[-1], x.shape[-1]
    padded = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (taps // 2, taps // 2)))
    out = np.repeat(np.asarray(bias, dtype=np.float64)[:, None], n, axis=1)
    for j in range(taps):  # one small matrix product per tap
        out += weight[:, :, j] @ padded[:, j : j + n]
    return out


def steep_gate(x: np.ndarray, fs: float, seconds: float, knee: float) -> np.ndarray:
    """``[T]`` in [0, 1): where the leads ``x`` ``[k, T]`` are steep (QRS), from their summed
    squared slope averaged over ``seconds``, relative to its median: ``e / (e + knee)``."""
    slope = np.diff(np.asarray(x, dtype=np.float64), axis=-1, prepend=x[:, :1])
    energy = (slope**2).sum(axis=0)
    width = max(1, round(seconds * fs))
    # centred moving average ('same' length) by cumulative sums
    total = np.concatenate([[0.0], np.cumsum(energy)])
    lo = np.clip(np.arange(energy.size) - width // 2, 0, energy.size)
    hi = np.clip(lo + width, 0, energy.size)
    envelope = (total[hi] - total[lo]) / width
    scale = float(np.median(envelope))
    if scale <= 0:
        return np.ones_like(envelope)
    envelope /= scale
    return envelope / (envelope + knee)


@dataclass(frozen=True)
class _Bound:
    weight: np.ndarray  # [8, k, K] on the plan's measured quantities
    bias: np.ndarray
    gain: np.ndarray  # [8]


class HighBandModel:
    """The high band of the 8 independent leads from the measured ones, at any rate above the
    low model's; see the module docstring. Load with :meth:`load` or :func:`installed`."""

    def __init__(self, card: dict[str, Any], covariance: dict[str, Any]) -> None:
        self.card = card
        self.name, self.version = card["name"], card["version"]
        self.fs = float(card["fs"])
        self.low_fs = float(card["low_fs"])
        self.lag = int(card["lag"])
        self.ridge = float(card["ridge"])
        self.gate_seconds = float(card["gate"]["seconds"])
        self.gate_knee = float(card["gate"]["knee"])
        # what the gate takes away, given back: a constant from the training records (a share
        # computed per record would amplify noise the gate removed on noisy inputs)
        self.gate_keep = float(card["gate"]["keep"])
        self.covariance = covariance
        self._bound: dict[str, _Bound] = {}
        self._responses: dict[tuple[str, tuple[int, ...], int], np.ndarray] = {}

    @classmethod
    def load(cls, card_path: str | Path) -> HighBandModel:
        """From its card and weight file (``<name>.npz``, checked against the card's SHA-256)."""
        from ecgfill.models.base import verify_sha256

        path = Path(card_path)
        try:
            card = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: cannot read high-band card: {exc}") from None
        if card.get("format") != HIGH_BAND_FORMAT:
            raise ModelError(f"{path}: not an ecgfill high-band card")
        weights = path.with_name(card["name"] + ".npz")
        if not weights.is_file():
            raise ModelError(f"{weights}: weight file for high-band model {card['name']} not found")
        verify_sha256(card, weights)
        with np.load(weights) as data:
            covariance = {"cov": data["cov"], "mean": data["mean"],
                          "max_lag": int(data["max_lag"])}
        return cls(card, covariance)

    def applies(self, fs: float, model_fs: float) -> bool:
        """Whether a record at ``fs`` has band above what a model at ``model_fs`` carries."""
        return model_fs <= self.low_fs + 1e-9 and fs > model_fs * (1 + 1e-6)

    @property
    def bandwidth_hz(self) -> tuple[float, float]:
        return low_path_top_hz(self.low_fs), TOP_HZ

    def bind(self, plan: LeadPlan) -> _Bound:
        from ecgfill.models.anyset import prediction_variance, subset_ridge

        if plan.key not in self._bound:
            a = plan.constraints()
            weight, bias = subset_ridge(self.covariance, a, self.lag, self.ridge)
            max_lag = int(self.covariance["max_lag"])
            true_var = np.diagonal(np.asarray(self.covariance["cov"])[:, :, max_lag])
            explained = prediction_variance(self.covariance, a, weight, self.lag)
            with np.errstate(divide="ignore", invalid="ignore"):
                gain = np.sqrt(true_var / explained)
            gain = np.clip(np.nan_to_num(gain, nan=MIN_GAIN, posinf=GAIN_CAP), MIN_GAIN, GAIN_CAP)
            # the high band has zero mean: no offset (the ridge's bias is rounding)
            self._bound[plan.key] = _Bound(weight, np.zeros_like(bias), gain)
        return self._bound[plan.key]

    def predict(self, measured: np.ndarray, fs: float, plan: LeadPlan,
                leads: tuple[str, ...] | list[str] = INDEPENDENT_LEADS) -> np.ndarray:
        """The high band ``[len(leads), T]`` (mV, at ``fs``) of the independent ``leads``,
        predicted from the plan's measured quantities ``measured`` ``[len(plan.inputs), T]``
        at ``fs`` (no NaN).

        Band split and ridge are one linear filter, applied by FFT (:meth:`_response`); the
        band split's response is :func:`high_band`'s own impulse response, so the result is
        :func:`high_band` then :func:`lagged_apply` up to the resampler's aliasing."""
        n = measured.shape[-1]
        x = np.asarray(measured if abs(fs - self.fs) < 1e-9 else resample(measured, fs, self.fs),
                       dtype=np.float64)
        bound = self.bind(plan)
        rows = [INDEPENDENT_LEADS.index(name) for name in leads]
        y, gate = self.ungated(x, plan, rows)
        y = y * gate * (self.gate_keep * bound.gain[rows])[:, None]
        if abs(fs - self.fs) >= 1e-9:
            y = high_band(fit_length(resample(y, self.fs, fs), n), fs, self.low_fs)
        return y.astype(np.float32)

    def ungated(self, x: np.ndarray, plan: LeadPlan, rows: list[int]
                ) -> tuple[np.ndarray, np.ndarray]:
        """The ridge's high band ``[len(rows), T]`` of the independent leads ``rows`` from the
        measured quantities ``x`` at :attr:`fs`, before the gate and the gain; and the gate
        ``[T]``."""
        bound = self.bind(plan)
        kernel = band_kernel(self.fs, self.low_fs)
        pad = min(kernel.size // 2 + self.lag, x.shape[-1] - 1)
        padded = np.concatenate([2 * x[:, :1] - x[:, pad:0:-1], x,
                                 2 * x[:, -1:] - x[:, -2 : -pad - 2 : -1]], axis=1)
        from scipy.fft import next_fast_len

        n_fft = next_fast_len(padded.shape[-1] + kernel.size, real=True)
        spectrum = np.fft.rfft(padded, n_fft)
        response = self._response(plan, bound, rows, n_fft)
        y = np.fft.irfft((response * spectrum[None]).sum(axis=1), n_fft)[:, pad : pad + x.shape[-1]]
        return y, steep_gate(x, self.fs, self.gate_seconds, self.gate_knee)

    def _response(self, plan: LeadPlan, bound: _Bound, rows: list[int], n_fft: int) -> np.ndarray:
        """``[outputs, k, n_fft // 2 + 1]``: the band split times the ridge, per frequency."""
        key = (plan.key, tuple(rows), n_fft)
        if key not in self._responses:
            kernel = band_kernel(self.fs, self.low_fs)
            half = kernel.size // 2
            circular = np.zeros(n_fft)
            circular[: half + 1], circular[n_fft - half :] = kernel[half:], kernel[:half]
            band = np.fft.rfft(circular)
            taps = bound.weight.shape[-1]
            freqs = np.arange(n_fft // 2 + 1)
            # Conv1d is a cross-correlation: y(t) = sum_j w_j x(t + j - lag)
            phase = np.exp(2j * np.pi * np.outer(np.arange(taps) - taps // 2, freqs) / n_fft)
            ridge = np.einsum("orj,jf->orf", bound.weight[rows], phase)
            if len(self._responses) > 16:
                self._responses.clear()
            self._responses[key] = ridge * band
        return self._responses[key]


@cache
def band_kernel(fs: float, low_fs: float) -> np.ndarray:
    """The zero-phase impulse response of :func:`high_band` at ``fs`` (odd length, centred),
    measured through the function itself and cut where it has decayed below 1e-6 of its peak."""
    n = 2 * round(KERNEL_SECONDS * fs) + 1
    impulse = np.zeros(n)
    impulse[n // 2] = 1.0
    response = high_band(impulse, fs, low_fs)
    significant = np.flatnonzero(np.abs(response) > 1e-6 * np.abs(response).max())
    half = int(max(n // 2 - significant[0], significant[-1] - n // 2))
    return response[n // 2 - half : n // 2 + half + 1]


def installed() -> HighBandModel | None:
    """The installed high-band model (the first card in the high-band format in
    :func:`~ecgfill.models.registry.model_dirs`), or None; loaded once per set of folders."""
    from ecgfill.models.registry import model_dirs

    return _installed_in(tuple(model_dirs()))


def card_paths(directories: Iterable[Path]) -> list[Path]:
    """The high-band cards in ``directories``, in order. Only a card with its ``.npz`` weight
    file beside it is read (the reconstruction models' cards, megabytes of JSON, are not: this
    runs at every start of ``reconstruct``)."""
    found = []
    for directory in directories:
        for path in sorted(directory.glob("*.json")):
            if not path.with_suffix(".npz").is_file():
                continue
            try:
                if json.loads(path.read_text()).get("format") == HIGH_BAND_FORMAT:
                    found.append(path)
            except (OSError, ValueError, AttributeError):
                continue
    return found


@cache
def _installed_in(directories: tuple[Path, ...]) -> HighBandModel | None:
    paths = card_paths(directories)
    return HighBandModel.load(paths[0]) if paths else None
