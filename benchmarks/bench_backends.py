"""Benchmark model inference: ONNX Runtime vs. PyTorch, batch sizes, threads and worker processes.

Every measurement runs in fresh child processes (this script re-started with ``--child``) on the
same synthetic 10-second records at the model's rate, so each backend pays only its own imports:

* backends: ONNX Runtime and PyTorch CPU on one model, ``--threads`` 1 and 2, ``--batches`` 1
  and 32, children alternating (onnx torch onnx torch ...); the ratio onnx / torch of ms/record
  is taken pair by pair (target <= 0.67);
* workers: 1 and 2 processes side by side (threads per worker = cores / workers), each loading
  its own model, started together once all are loaded: records/s, ms/record, model load cost
  (import + session) and peak RSS per worker.

    .venv/bin/python benchmarks/bench_backends.py
    .venv/bin/python benchmarks/bench_backends.py --model /work/runs/unet-I-II-V4/unet-i-ii-v4.json
    .venv/bin/python benchmarks/bench_backends.py --records 8 --repeats 1 --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

from _common import child_env, finish, machine, median, print_machine, table

TARGET_RATIO = 0.67


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="auto",
                        help="model name, card or weight path; auto: the shipped model for --leads")
    parser.add_argument("--leads", default="I,II,V4", help="input leads for --model auto")
    parser.add_argument("--records", type=int, default=64, help="records per measurement")
    parser.add_argument("--passes", type=int, default=3, help="passes over the records per child")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeats", type=int, default=3, help="paired children per configuration")
    parser.add_argument("--json", action="store_true", help="also print all figures as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))
    info = machine()
    print_machine(info)
    model = resolve_model(args.model, args.leads.split(","))
    print(f"model: {model}")
    base = {"model": model, "records": args.records, "passes": args.passes}
    threads = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    results: dict[str, Any] = {"machine": info, "model": model}
    results["backends"] = compare_backends(base, threads, batches, args.repeats)
    results["workers"] = compare_workers(base, [int(w) for w in args.workers.split(",")], batches)
    finish(results, args.json)
    return 0


def resolve_model(model: str, leads: list[str]) -> str:
    """A card or weight path (or registry name) both backends can load."""
    if model != "auto":
        return model
    from ecgfill.models import available_models, find_model_for_leads

    name = find_model_for_leads(leads)
    if name is None:
        raise SystemExit(f"no shipped model takes {','.join(leads)}; pass --model")
    return next(c["card_path"] for c in available_models() if c["name"] == name)


# --------------------------------------------------------------------------------------------
# Parent: configurations


def compare_backends(base: dict[str, Any], threads: list[int], batches: list[int],
                     repeats: int) -> list[dict[str, Any]]:
    rows, out = [], []
    for count in threads:
        for batch in batches:
            runs: dict[str, list[dict[str, Any]]] = {"onnx": [], "torch": []}
            for _ in range(repeats):
                for backend in runs:
                    config = {**base, "backend": backend, "threads": count, "batch": batch}
                    runs[backend].append(run_children([config])[0])
            ratios = [o["ms_per_record"] / t["ms_per_record"]
                      for o, t in zip(runs["onnx"], runs["torch"], strict=True)]
            figures = {b: {k: median([r[k] for r in rs]) for k in ("ms_per_record", "load_s",
                                                                    "peak_rss_mib")}
                       for b, rs in runs.items()}
            entry = {"threads": count, "batch": batch, "ratio": median(ratios), "ratios": ratios,
                     **figures}
            out.append(entry)
            rows.append([count, batch, figures["onnx"]["ms_per_record"],
                         figures["torch"]["ms_per_record"], entry["ratio"],
                         figures["onnx"]["load_s"], figures["torch"]["load_s"],
                         figures["onnx"]["peak_rss_mib"], figures["torch"]["peak_rss_mib"]])
    print(f"\nONNX Runtime vs PyTorch CPU ({base['records']} records x {base['passes']} passes, "
          f"median of {repeats} paired children; target ratio <= {TARGET_RATIO}):")
    print(table(rows, ["threads", "batch", "onnx ms/rec", "torch ms/rec", "onnx/torch",
                       "onnx load s", "torch load s", "onnx MiB", "torch MiB"]))
    return out


def compare_workers(base: dict[str, Any], workers: list[int], batches: list[int]) -> list[dict[str, Any]]:
    cores = os.cpu_count() or 1
    rows, out = [], []
    for batch in batches:
        for count in workers:
            per_thread = max(1, cores // count)
            configs = [{**base, "backend": "onnx", "threads": per_thread, "batch": batch,
                        "shard": [k, count]} for k in range(count)]
            results = run_children(configs)
            span = max(r["end"] for r in results) - min(r["start"] for r in results)
            done = sum(r["records_done"] for r in results)
            entry = {"workers": count, "batch": batch, "threads_per_worker": per_thread,
                     "records_per_s": done / span,
                     "ms_per_record_per_worker": median([r["ms_per_record"] for r in results]),
                     "load_s": median([r["load_s"] for r in results]),
                     "worker_peak_rss_mib": [r["peak_rss_mib"] for r in results],
                     "worker_rss_after_load_mib": [r["rss_after_load_mib"] for r in results]}
            out.append(entry)
            rows.append([batch, count, per_thread, entry["records_per_s"],
                         1000 / entry["records_per_s"], entry["ms_per_record_per_worker"],
                         entry["load_s"], max(entry["worker_peak_rss_mib"])])
    print("\nworkers (onnx; each worker loads its own model; all start together):")
    print(table(rows, ["batch", "workers", "threads", "records/s", "ms/record", "worker ms/rec",
                       "load s", "MiB/worker"]))
    return out


def run_children(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Start one child per config, let all load, start them together, collect their figures."""
    children = [
        subprocess.Popen([sys.executable, __file__, "--child", json.dumps(c)], env=child_env(),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for c in configs
    ]
    for proc in children:
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "ready":
            proc.wait()
            raise RuntimeError(f"child failed before starting (exit {proc.returncode}): {line}")
    for proc in children:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in children:
        output, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"child exited {proc.returncode}")
        results.append(json.loads(output))
    return results


# --------------------------------------------------------------------------------------------
# Child: one model, one configuration


def child(config: dict[str, Any]) -> int:
    """Load, warm up, report ``ready``, wait for ``go``, time passes over the records."""
    import numpy as np

    from ecgfill.synth import synthesize_batch

    start = time.perf_counter()
    from ecgfill.models import load_model

    model = load_model(config["model"], backend=config["backend"], threads=config["threads"])
    load_s = time.perf_counter() - start
    rss_after_load = _rss_mib()
    index, count = config.get("shard", [0, 1])
    records = synthesize_batch(config["records"], model.window / model.fs, model.fs, seed=1)
    x = _model_inputs(records, model.input_leads)[index::count]
    batch = config["batch"]
    first = time.perf_counter()
    model.predict(x[:batch])
    first_call_s = time.perf_counter() - first
    print("ready", flush=True)
    sys.stdin.readline()
    begin = time.time()
    passes = []
    for _ in range(config["passes"]):
        tick = time.perf_counter()
        for lo in range(0, len(x), batch):
            model.predict(np.ascontiguousarray(x[lo:lo + batch]))
        passes.append(time.perf_counter() - tick)
    end = time.time()
    print(json.dumps({
        "load_s": load_s, "first_call_s": first_call_s, "rss_after_load_mib": rss_after_load,
        "ms_per_record": 1000 * median(passes) / len(x), "records_done": len(x) * len(passes),
        "start": begin, "end": end, "peak_rss_mib": _peak_rss_mib(),
    }))
    return 0


def _model_inputs(records: Any, leads: tuple[str, ...]) -> Any:
    """The model's input leads from 12-lead ``[n, 12, T]`` synthetic records."""
    from ecgfill.leads import STANDARD_LEADS

    return records[:, [STANDARD_LEADS.index(n) for n in leads]].copy()


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())
