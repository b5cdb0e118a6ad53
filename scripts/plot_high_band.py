"""Draw a 500 Hz record reconstructed with and without the high band (the issue-18 pictures).

    python scripts/plot_high_band.py --out docs [--model unet-i-ii-v4] [--leads I,II,V4]

Among the PTB-XL 500 Hz records of fold 9 (the validation fold), picks the one whose learned
leads' 40-150 Hz energy is most concentrated in the QRS (a notched or fragmented QRS rather than
noise; chosen on the truth alone, not on how well it is reconstructed), reconstructs it from ``--leads`` as
``ecgfill reconstruct`` does, and writes ``high_band_12lead.png`` (``ecgfill plot`` of the output,
25 mm/s, 10 mm/mV) and ``high_band_zoom.png`` (one QRS of three learned leads: truth, without
and with the high band, with each one's 40-150 Hz r over the record).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

from ecgfill.dsp import bandpass, highpass
from ecgfill.evaluate.features import detect_r_peaks
from ecgfill.evaluate.run import complete_reference
from ecgfill.io import read_record, write_record
from ecgfill.leads import STANDARD_LEADS
from ecgfill.reconstruct import ReconstructSettings, choose_model, high_band_for, reconstruct_record

SHARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptb-xl"


def notching(signal: np.ndarray, fs: float, peaks: np.ndarray) -> float:
    """40-150 Hz energy within +-60 ms of the beats per unit of it elsewhere (notches, not
    noise), times the band's share of the lead's energy."""
    band = bandpass(signal, fs, 40.0, 150.0) ** 2
    near = np.zeros(band.size, bool)
    for peak in peaks:
        near[max(0, peak - int(0.06 * fs)) : peak + int(0.06 * fs)] = True
    if not near.any() or near.all():
        return 0.0
    share = band.sum() / (highpass(signal, fs) ** 2).sum()
    return float(band[near].mean() / band[~near].mean() * share)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs")
    parser.add_argument("--model", default="unet-i-ii-v4")
    parser.add_argument("--leads", default="I,II,V4")
    args = parser.parse_args()
    leads = tuple(args.leads.split(","))
    model, _ = choose_model(leads, ReconstructSettings(model=args.model))
    learned = [n for n in ("V1", "V2", "V3", "V5", "V6") if n not in leads][:3]
    rows = [STANDARD_LEADS.index(n) for n in learned]
    with open(SHARE / "ptbxl500_folds.csv", newline="") as f:
        paths = [SHARE / (r["filename_hr"] + ".hea") for r in csv.DictReader(f)
                 if r["strat_fold"] == "9"]
    shares = []
    for path in paths:
        truth = complete_reference(read_record(path), path)
        peaks = detect_r_peaks(truth.signal, truth.fs)
        shares.append(np.mean([notching(truth.signal[k], truth.fs, peaks) for k in rows]))
    path = paths[int(np.argmax(shares))]
    truth = complete_reference(read_record(path), path)
    masked = truth.select(list(leads))
    before, _ = reconstruct_record(masked, model)
    after, _ = reconstruct_record(masked, model, high_band=high_band_for(truth.fs, model))
    fs = truth.fs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peaks = detect_r_peaks(truth.signal, fs)
    centre = int(peaks[len(peaks) // 2])
    window = slice(max(0, centre - int(0.15 * fs)), centre + int(0.2 * fs))
    t = np.arange(truth.n_samples)[window] / fs * 1000
    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 2.4 * len(rows)), sharex=True)
    for ax, name, k in zip(np.atleast_1d(axes), learned, rows, strict=True):
        series = {"truth": highpass(truth.signal[k], fs), "without high band":
                  highpass(before.signal[k], fs), "with high band": highpass(after.signal[k], fs)}
        band_truth = bandpass(truth.signal[k], fs, 40.0, 150.0)
        for (label, y), style in zip(series.items(), ("k-", "C0--", "C3-"), strict=True):
            r = np.corrcoef(band_truth, bandpass(y, fs, 40.0, 150.0))[0, 1]
            text = label if label == "truth" else f"{label} (40-150 Hz r {r:.2f})"
            ax.plot(t, y[window], style, lw=1.2 if label == "truth" else 1.0, label=text)
        ax.set_ylabel(f"{name} (mV)")
        ax.legend(loc="lower right", fontsize=7, framealpha=0.9)
    np.atleast_1d(axes)[-1].set_xlabel("ms")
    fig.suptitle(f"{path.stem} at {fs:g} Hz, {','.join(leads)} measured, {model.name}: "
                 "one QRS of three reconstructed leads (0.5 Hz high-passed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "high_band_zoom.png", dpi=130)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / path.stem
        write_record(after, base)
        from typer.testing import CliRunner

        from ecgfill.cli import app

        result = CliRunner().invoke(app, ["plot", str(base) + ".hea", tmp])
        if result.exit_code != 0:
            print(result.output, file=sys.stderr)
            return 1
        (Path(tmp) / f"{path.stem}.png").replace(out / "high_band_12lead.png")
    print(f"{path.stem}: notching score {max(shares):.4f}; "
          f"wrote {out / 'high_band_zoom.png'} and {out / 'high_band_12lead.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
