"""Train the diagnostic classifier shipped as classifier-ptbxl-superclass.{onnx,pt,json}.

    python scripts/train_classifier.py DATASET_DIR LABELS_CSV OUT_DIR [options]

DATASET_DIR is a ``ecgfill preprocess`` dataset of PTB-XL at 100 Hz (train split = folds 1-8,
val split = fold 9), LABELS_CSV PTB-XL's ``ptbxl_database.csv`` (``scp_statements.csv`` beside
it). The exact command line is recorded in the card.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from ecgfill.console import error
    from ecgfill.errors import EcgfillError
    from ecgfill.models.classifier import DEFAULT_CLASSIFIER, ClassifierConfig
    from ecgfill.train.classifier import ClassifierTrainOptions, train_classifier

    defaults = ClassifierTrainOptions(Path(), Path(), Path())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", type=Path)
    parser.add_argument("labels_csv", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--name", default=DEFAULT_CLASSIFIER)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--max-minutes", type=float, default=defaults.max_minutes)
    parser.add_argument("--crop-seconds", type=float, default=defaults.crop_seconds)
    parser.add_argument("--widths", default=",".join(map(str, ClassifierConfig().widths)))
    parser.add_argument("--hidden", type=int, default=ClassifierConfig().hidden)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--val-limit", type=int, default=None)
    args = parser.parse_args(argv)
    config = ClassifierConfig(widths=tuple(int(w) for w in args.widths.split(",")),
                              hidden=args.hidden)
    command = shlex.join(["python", "scripts/train_classifier.py",
                          *(sys.argv[1:] if argv is None else argv)])
    options = ClassifierTrainOptions(
        args.dataset_dir, args.labels_csv, args.out_dir, name=args.name, config=config,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, max_minutes=args.max_minutes,
        crop_seconds=args.crop_seconds, seed=args.seed, threads=args.threads,
        train_limit=args.train_limit, val_limit=args.val_limit, command=command,
    )
    try:
        train_classifier(options)
    except EcgfillError as exc:
        error(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
