"""Fit the high-band model (reconstructed leads above 47.5 Hz, up to 150 Hz) and write its card.

    ecgfill preprocess ../shared/data/ptb-xl/records500 data/ptbxl500hp --fs 500 \
        --splits ../shared/data/ptb-xl/ptbxl500_folds.csv --highpass 0.5
    python scripts/fit_high_band.py data/ptbxl500hp models

Trains on the dataset's train split (PTB-XL folds 1-8), chooses the gate on it, and scores the
high band alone on the val split (fold 9, the validation fold). Writes ``highband-any.json`` and
``highband-any.npz`` into the output folder (``models/`` ships them). See
:mod:`ecgfill.models.highband`.
"""

from __future__ import annotations

import argparse
import sys

from ecgfill.errors import EcgfillError
from ecgfill.train.highband import fit_high_band


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="preprocessed dataset at >= 300 Hz")
    parser.add_argument("out_dir", help="folder for <name>.json and <name>.npz")
    parser.add_argument("--name", default="highband-any")
    parser.add_argument("--version", default=None, help="default: today's date (YYYY.MM.DD)")
    args = parser.parse_args(argv)
    try:
        fit_high_band(args.dataset, args.out_dir, args.name,
                      argv=argv if argv is not None else sys.argv[1:], version=args.version)
    except EcgfillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
