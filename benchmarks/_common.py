"""Shared helpers of the benchmark scripts: synthetic inputs, timed child processes, machine facts.

Not part of the package or the test suite. Every script imports this module from its own folder
(``python benchmarks/<name>.py`` puts ``benchmarks/`` first on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ECGFILL = str(BIN / "ecgfill")
MIB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# Machine and reporting


def machine() -> dict[str, Any]:
    """Where the figures come from: cores, CPU model, memory, date, library versions."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "busy_training_jobs": training_jobs(),
        "load_average_1min": os.getloadavg()[0],
    }


def training_jobs() -> int:
    """How many ``ecgfill train`` processes share the machine (figures taken then are noisy)."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = status.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"ecgfill") for a in argv[:2]) and b"train" in argv[1:3]:
            count += 1
    return count


def print_machine(info: dict[str, Any]) -> None:
    busy = info["busy_training_jobs"]
    note = f"; WARNING: {busy} training job(s) running" if busy else ""
    print(f"# {info['date_utc']} UTC, {info['nproc']} cores ({info['cpu']}), "
          f"{info['memory_gib']} GiB, Python {info['python']}, load average "
          f"{info['load_average_1min']:.2f}{note}")


def finish(results: dict[str, Any], as_json: bool) -> None:
    """Print the load average at the end (other work on the machine skews every figure) and
    ``results`` as one JSON object when asked (the human tables were printed already)."""
    results["load_average_1min_at_end"] = os.getloadavg()[0]
    print(f"# load average at the end: {results['load_average_1min_at_end']:.2f}")
    if as_json:
        print(json.dumps(results, indent=2, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def table(rows: list[list[Any]], header: list[str]) -> str:
    """A plain, aligned text table."""
    cells = [header] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


# --------------------------------------------------------------------------------------------
# Inputs


def synthetic_records(
    directory: Path, count: int, seconds: float, fs: float, leads: Sequence[str], seed: int = 0
) -> list[Path]:
    """``count`` WFDB records of varied synthetic ECGs reduced to ``leads``; returns .hea paths."""
    from ecgfill.io import write_record
    from ecgfill.synth import SynthParams, synthesize

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        params = SynthParams(heart_rate_bpm=55.0 + (i * 7) % 50, noise_mv=0.01,
                             baseline_wander_mv=0.05, axis_deg=-20.0 + (i * 13) % 100)
        record = synthesize(seconds, fs, params, seed=seed + i).select(list(leads))
        base = directory / f"rec{i:05d}"
        write_record(record, base)
        paths.append(base.with_suffix(".hea"))
    return paths


def long_record(base: Path, hours: float, fs: float, leads: Sequence[str],
                chunk_seconds: float = 600.0) -> Path:
    """A ``hours``-long WFDB record written chunk by chunk (bounded memory); returns its .hea.

    Each chunk is an independent synthetic stretch (its own seed): the joins are not smooth,
    which costs the reconstruction nothing extra.
    """
    from ecgfill.io import open_writer
    from ecgfill.synth import SynthParams, synthesize

    params = SynthParams(noise_mv=0.01, baseline_wander_mv=0.05)
    total = round(hours * 3600 * fs)
    step = round(chunk_seconds * fs)
    base.parent.mkdir(parents=True, exist_ok=True)
    with open_writer(base, "wfdb", total) as writer:
        for k, start in enumerate(range(0, total, step)):
            n = min(step, total - start)
            writer.write(synthesize(n / fs, fs, params, seed=k).select(list(leads)))
    return base.with_suffix(".hea")


# --------------------------------------------------------------------------------------------
# Timed child processes


@dataclass
class Run:
    """One finished child: wall and CPU seconds, peak RSS (largest process), per-process peaks."""

    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_mib: float
    returncode: int
    process_peaks_mib: list[float] = field(default_factory=list)

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def run_timed(argv: Sequence[str], env: dict[str, str] | None = None, sample_tree: bool = False,
              check: bool = True) -> Run:
    """Run ``argv`` (output discarded) and measure it with ``wait4``: wall, user+sys and peak RSS
    (``ru_maxrss``: the largest single process among it and the children it waited for).

    With ``sample_tree`` the peak RSS (VmHWM) of every process in the tree is polled, which
    gives the memory of each worker process separately.
    """
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty child never blocks
        start = time.perf_counter()
        child = subprocess.Popen(list(argv), env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=errors)
        sampler = _TreeSampler(child.pid) if sample_tree else None
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        peaks = sampler.stop() if sampler else []
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if check and child.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {child.returncode}: {stderr.strip()[-2000:]}")
    return Run(wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024, child.returncode,
               peaks)


class _TreeSampler:
    """Polls VmHWM of a process and all its descendants until stopped."""

    def __init__(self, root: int, interval: float = 0.02) -> None:
        self.root = root
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in _descendants(self.root):
                hwm = _vm_hwm_kib(pid)
                if hwm:
                    self.peaks[pid] = max(self.peaks.get(pid, 0), hwm)
            self._stop.wait(self.interval)

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        return [kib / 1024 for _, kib in sorted(self.peaks.items())]


def _descendants(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                todo.extend(int(c) for c in task.read_text().split())
    return pids


def _vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def paired_runs(commands: dict[str, Callable[[], Run]], repeats: int) -> dict[str, list[Run]]:
    """Run each command ``repeats`` times in turn (A B A B ...) so drift hits all alike."""
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            runs[name].append(command())
    return runs


def child_env(**extra: str) -> dict[str, str]:
    """The environment for ``ecgfill`` children (no colour, no progress bar noise)."""
    env = dict(os.environ)
    env.update({"NO_COLOR": "1", "TERM": "dumb", **extra})
    return env
