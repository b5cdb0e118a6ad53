"""Benchmark the any-subset model against the dedicated U-Net on the dedicated model's lead set.

Both run through the same path ``ecgfill reconstruct`` uses (``choose_model`` then
``reconstruct_record``: input filter, model, lead-plan completion) on the same synthetic
10-second records, alternating model by model in one process after a warm-up, one thread each;
the figure is the ratio any-subset / dedicated of the median ms per record (target <= 2).
A second pass times the network call alone (``model.predict``).

    .venv/bin/python benchmarks/bench_anyset.py
    .venv/bin/python benchmarks/bench_anyset.py --anyset anyset-unet --dedicated unet-i-ii-v4 \
        --leads I,II,V4 --fs 500 --json
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _common import finish, machine, median, print_machine, table

TARGET_RATIO = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anyset", default="anyset-unet")
    parser.add_argument("--dedicated", default="unet-i-ii-v4")
    parser.add_argument("--leads", default="I,II,V4")
    parser.add_argument("--fs", type=float, default=100.0, help="record rate (Hz)")
    parser.add_argument("--records", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import onnxruntime  # noqa: F401  (imported before timing)

    from ecgfill.reconstruct import ReconstructSettings, choose_model, reconstruct_record
    from ecgfill.synth import synthesize

    info = machine()
    print_machine(info)
    leads = tuple(args.leads.split(","))
    records = [synthesize(10.0, args.fs, seed=k).select(list(leads)) for k in range(args.records)]
    models: dict[str, Any] = {}
    for label, name in (("dedicated", args.dedicated), ("anyset", args.anyset)):
        models[label], _ = choose_model(leads, ReconstructSettings(model=name, threads=1))
    for model in models.values():  # warm-up
        reconstruct_record(records[0], model)
    times: dict[str, list[float]] = {f"{k} {what}": [] for k in models
                                     for what in ("reconstruct", "network")}
    for _ in range(args.rounds):
        for label, model in models.items():
            began = time.perf_counter()
            for record in records:
                reconstruct_record(record, model)
            times[f"{label} reconstruct"].append(1e3 * (time.perf_counter() - began)
                                                 / len(records))
            x = np.stack([r.signal for r in records]).astype(np.float32)
            if abs(args.fs - model.fs) < 1e-9:
                began = time.perf_counter()
                for k in range(len(records)):
                    model.predict(x[k:k + 1])
                times[f"{label} network"].append(1e3 * (time.perf_counter() - began)
                                                 / len(records))
    rows = [[name, f"{median(v):.2f}" if v else "-"] for name, v in times.items()]
    print(table(rows, ["measurement", "ms/record (median)"]))
    ratio = median(times["anyset reconstruct"]) / median(times["dedicated reconstruct"])
    print(f"any-subset / dedicated, reconstruct per record: {ratio:.2f} (target <= {TARGET_RATIO})")
    finish({"machine": info, "leads": leads, "fs": args.fs, "ms_per_record": {
        k: median(v) for k, v in times.items() if v}, "ratio": ratio,
        "target": TARGET_RATIO}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
