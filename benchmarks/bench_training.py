"""Training cost per epoch on the PTB-XL share, read from finished or running training runs.

Starts no training: it reads each run folder's ``metrics.jsonl`` (one line per epoch; epoch 0 is
the initial validation), ``options.json`` and, when exported, the model card. Epochs that were
cut short by ``--max-minutes`` (fewer steps than a full epoch) are marked partial and left out
of the medians. Runs from before per-epoch timing was recorded give their total only.

    .venv/bin/python benchmarks/bench_training.py
    .venv/bin/python benchmarks/bench_training.py /work/runs/unet-I-II-V4 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _common import finish, machine, median, print_machine, table

DEFAULT_RUNS = Path("/work/runs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path,
                        help=f"run folders (default: every folder under {DEFAULT_RUNS})")
    parser.add_argument("--json", action="store_true", help="also print all figures as JSON")
    args = parser.parse_args()
    folders = args.runs or sorted(p.parent for p in DEFAULT_RUNS.glob("*/metrics.jsonl"))
    info = machine()
    print_machine(info)
    summaries = [summarise(folder) for folder in folders if (folder / "metrics.jsonl").is_file()]
    rows = [[s["run"], s["arch"], s["device"], s["threads"], s["batch_size"], s["train_records"],
             s["full_epochs"], *(_or_dash(s[k]) for k in ("epoch_s_median", "epoch_s_min",
                                                          "records_per_s_median", "total_s")),
             "yes" if s["finished"] else "no"] for s in summaries]
    print("\ntraining per epoch (median over full epochs):")
    print(table(rows, ["run", "arch", "device", "threads", "batch", "train records", "epochs",
                       "s/epoch", "min s/epoch", "records/s", "total s", "exported"]))
    finish({"machine": info, "runs": summaries}, args.json)
    return 0


def summarise(folder: Path) -> dict[str, Any]:
    """Per-epoch time and throughput of one run folder."""
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()
             if line.strip()]
    options = _read_json(folder / "options.json")
    cards = [c for c in (_read_json(p) for p in folder.glob("*.json"))
             if c.get("format") == "ecgfill-model"]
    card = cards[0] if cards else {}
    training = card.get("training", {})
    train_records = ((training.get("dataset") or {}).get("counts") or {}).get("train")
    epochs = [m for m in lines if m.get("epoch", 0) >= 1 and "epoch_seconds" in m]
    steps_per_epoch = _full_epoch_steps(epochs)
    full = [m for k, m in enumerate(epochs)
            if steps_per_epoch is None or _steps_in(epochs, k) >= steps_per_epoch]
    return {
        "run": folder.name,
        "arch": options.get("arch", card.get("arch", "?")),
        "device": options.get("device", "?"),
        "threads": options.get("threads") or "all",
        "batch_size": options.get("batch_size", "?"),
        "train_records": train_records if train_records is not None else "?",
        "full_epochs": len(full),
        "partial_epochs": len(epochs) - len(full),
        "epoch_s_median": median([m["epoch_seconds"] for m in full]) if full else None,
        "epoch_s_min": min(m["epoch_seconds"] for m in full) if full else None,
        "records_per_s_median": (median([m["train_records_per_second"] for m in full])
                                 if full else None),
        "total_s": lines[-1].get("seconds") if lines else None,
        "finished": bool(card),
    }


def _steps_in(epochs: list[dict[str, Any]], k: int) -> int:
    previous = epochs[k - 1]["step"] if k else 0
    return int(epochs[k].get("step", 0)) - int(previous)


def _full_epoch_steps(epochs: list[dict[str, Any]]) -> int | None:
    """Steps of a full epoch (the most common count), or None when steps were not logged."""
    if not epochs or any("step" not in m for m in epochs):
        return None
    counts = [_steps_in(epochs, k) for k in range(len(epochs))]
    return max(set(counts), key=lambda c: (counts.count(c), c))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _or_dash(value: float | None) -> float | str:
    return "-" if value is None else value


if __name__ == "__main__":
    sys.exit(main())
