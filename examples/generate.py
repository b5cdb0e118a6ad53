"""Write the example records shipped in examples/ (synthetic, no patient data).

Run from the repository root: ``python examples/generate.py``. Each record is a physiological
12-lead ECG from ``ecgfill.synth`` reduced to the leads a wearable would measure.
"""

from __future__ import annotations

from pathlib import Path

from ecgfill.io import write_record
from ecgfill.synth import SynthParams, synthesize

HERE = Path(__file__).resolve().parent

EXAMPLES = [
    # (relative output, leads kept, fs, seconds, format, params, seed)
    ("patch/patch_I_II_V4", ["I", "II", "V4"], 500, 10, "wfdb", SynthParams(heart_rate_bpm=72), 1),
    ("patch/patch_II_V1_V5", ["II", "V1", "V5"], 500, 10, "wfdb", SynthParams(heart_rate_bpm=58), 2),
    ("holter/holter_I_II_V3", ["I", "II", "V3"], 250, 30, "edf", SynthParams(heart_rate_bpm=88), 3),
    ("watch/watch_I", ["I"], 500, 10, "wfdb", SynthParams(heart_rate_bpm=65, noise_mv=0.01), 4),
]


def main() -> None:
    for rel, leads, fs, seconds, fmt, params, seed in EXAMPLES:
        record = synthesize(seconds, fs, params, seed=seed).select(leads)
        record.comments = ["synthetic example from ecgfill.synth (no patient data)"]
        for path in write_record(record, HERE / rel, fmt):
            print(path.relative_to(HERE.parent))


if __name__ == "__main__":
    main()
