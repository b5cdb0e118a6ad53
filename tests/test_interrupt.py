"""``reconstruct`` killed mid-batch (SIGKILL, no chance to clean up) never leaves a partial
record, and a rerun finishes the batch with outputs identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from corpus import build_linear_model, valid_record

from ecgfill.io import read_record, write_record

N_RECORDS = 24
SECONDS = 120.0  # long enough that a kill often lands while an output is being written
HIDDEN_TEMPORARY = re.compile(r"^\..+\.tmp-\d+$")


@pytest.fixture(scope="module")
def model_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_linear_model(tmp_path_factory.getbasetemp() / "corpus-model")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("interrupt-inputs")
    for k in range(N_RECORDS):
        record = valid_record(seconds=SECONDS, heart_rate_bpm=55.0 + 2 * k, axis_deg=float(k))
        write_record(record, folder / f"batch{k // 8}" / f"rec{k:02d}")
    return folder


def command(inputs: Path, out: Path, card: Path) -> list[str]:
    return [sys.executable, "-m", "ecgfill", "reconstruct", str(inputs), str(out),
            "--model", str(card), "--json"]


def visible_files(out: Path) -> dict[str, bytes]:
    """Files a user (or a later tool) sees as outputs: everything but hidden temporaries."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def hidden_files(out: Path) -> list[str]:
    return [p.name for p in out.rglob(".*") if p.is_file()]


def finished_headers(out: Path) -> int:
    return sum(1 for p in out.rglob("*.hea") if not p.name.startswith("."))


def kill_after(inputs: Path, out: Path, card: Path, outputs: int) -> None:
    """Start a run and SIGKILL it once ``outputs`` records are finished (it must still run)."""
    process = subprocess.Popen(command(inputs, out, card), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while finished_headers(out) < outputs and process.poll() is None:
            assert time.monotonic() < deadline, "reconstruct made no progress"
            time.sleep(0.002)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -9, "the batch ended before it could be interrupted"


def test_sigkill_leaves_no_partial_output_and_rerun_matches(
    inputs: Path, model_card: Path, tmp_path: Path
) -> None:
    reference_out = tmp_path / "reference"
    done = subprocess.run(command(inputs, reference_out, model_card), capture_output=True,
                          text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    reference = visible_files(reference_out)
    assert len(reference) == 2 * N_RECORDS and hidden_files(reference_out) == []

    out = tmp_path / "interrupted"
    for outputs in (2, 8):  # two interruptions at different points of the batch
        kill_after(inputs, out, model_card, outputs)
        seen = visible_files(out)
        assert 0 < finished_headers(out) < N_RECORDS
        # Whatever is visible is complete: byte-identical to the uninterrupted run's file.
        assert all(seen[name] == reference[name] for name in seen), "partial output visible"
        assert all(HIDDEN_TEMPORARY.match(name) for name in hidden_files(out))

    rerun = subprocess.run(command(inputs, out, model_card), capture_output=True, text=True,
                           check=False, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    statuses = [json.loads(line)["status"] for line in rerun.stdout.splitlines()]
    assert len(statuses) == N_RECORDS and set(statuses) == {"ok", "skipped"}
    assert statuses.count("skipped") >= 8
    assert visible_files(out) == reference


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_ends_every_worker_and_leaves_no_temporary(
    inputs: Path, model_card: Path, tmp_path: Path
) -> None:
    """SIGTERM to ``reconstruct --workers 2`` (a scheduler's time limit, ``kill``): the batch
    stops with 143, no worker outlives it and no temporary is left beside the outputs."""
    import signal

    out = tmp_path / "out"
    process = subprocess.Popen([*command(inputs, out, model_card), "--workers", "2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while finished_headers(out) < 2 and process.poll() is None:
            assert time.monotonic() < deadline, "reconstruct made no progress"
            time.sleep(0.002)
        workers = descendants(process.pid)
        assert workers, "no worker processes seen"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        time.sleep(0.5)
        assert process.returncode == 128 + signal.SIGTERM, stderr
        assert stderr.rstrip().endswith("error: interrupted")
        assert [pid for pid in workers if alive(pid)] == []
        assert hidden_files(out) == []
        assert 0 < finished_headers(out) < N_RECORDS
        for header in out.rglob("*.hea"):  # what is visible is complete
            read_record(header)
    finally:
        process.kill()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
