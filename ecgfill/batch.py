"""The batch engine shared by ``derive-limb`` and ``reconstruct``.

Every record is processed in isolation: a failure becomes one error line (and a JSON object with
``status: error``) and the batch goes on. Outputs mirror the input tree, are skipped when they
already exist (unless overwritten), and are written atomically by the writers.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ecgfill import console
from ecgfill.errors import RecordError
from ecgfill.io import output_problem
from ecgfill.io.discover import RecordInput

Status = Literal["ok", "skipped", "error"]
REPEATED_WARNINGS_SHOWN = 3  # the same warning text is printed for this many records, then counted
WORKER_EXIT_SECONDS = 10.0  # after SIGTERM, a worker gets this long to clean up before SIGKILL
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised where the program is, so every ``with`` block unwinds (writers
    remove their temporaries); ``exit_code`` is 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


@contextmanager
def stop_signals_handled(handler: Any) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``handler`` for the duration (in the main thread; elsewhere
    nothing changes): :func:`_raise_interrupted` so the program unwinds, ``SIG_IGN`` while the
    workers are being stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@dataclass
class Job:
    """One record to process and where its output goes."""

    item: RecordInput
    output: Path | None
    fmt: str = "wfdb"


@dataclass
class Outcome:
    """What happened to one record; ``details`` holds command-specific JSON fields."""

    input: str
    output: str | None
    status: Status
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "status": self.status,
            "error": self.error,
            **self.details,
            "warnings": self.warnings,
        }


@dataclass
class Summary:
    ok: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    warnings_seen: Counter[str] = field(default_factory=Counter)

    @property
    def exit_code(self) -> int:
        return console.EXIT_FAILED if self.failed else console.EXIT_OK


def plan_jobs(
    items: list[RecordInput], out_dir: Path, *, fmt: str = "wfdb", overwrite: bool = False
) -> tuple[list[Job], list[Outcome]]:
    """Map inputs to outputs; returns jobs to run and outcomes decided already (errors, skips)."""
    jobs: list[Job] = []
    decided: list[Outcome] = []
    claimed: dict[Path, str] = {}
    for item in items:
        if item.error:
            decided.append(Outcome(str(item.path), None, "error", item.error))
            continue
        base = item.output_base(out_dir)
        if base in claimed:
            problem = f"output {base} is also produced by {claimed[base]}; rename one of them"
            decided.append(Outcome(str(item.path), str(base), "error", problem))
            continue
        claimed[base] = str(item.path)
        problem = None if overwrite else output_problem(base, fmt)
        if problem == "":
            decided.append(Outcome(str(item.path), str(base), "skipped"))
            continue
        if problem:
            console.warn(f"{item.path}: existing output {base} is incomplete ({problem}); redoing it")
        jobs.append(Job(item, base, fmt))
    return jobs, decided


def guarded(process: Callable[[Job], Outcome], job: Job) -> Outcome:
    """Run ``process`` on one job, turning any failure into an error outcome."""
    try:
        return process(job)
    except RecordError as exc:
        return Outcome(str(job.item.path), _out(job), "error", exc.problem)
    except OSError as exc:  # readers report their own OSErrors as RecordError: this is a write
        problem = f"cannot write output {job.output or ''}: {exc.strerror or exc}"
        return Outcome(str(job.item.path), _out(job), "error", problem)
    except Exception as exc:  # one bad record never stops the batch
        problem = f"internal error ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        return Outcome(str(job.item.path), _out(job), "error", problem)


def run_batch(
    jobs: list[Job],
    decided: list[Outcome],
    process: Callable[[Job], Outcome],
    *,
    workers: int = 1,
    json_output: bool = False,
    label: str = "Processing",
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Summary:
    """Process all jobs (in parallel when ``workers`` > 1), report each outcome, summarise."""
    summary = Summary()
    start = time.perf_counter()
    for outcome in decided:
        _report(outcome, summary, json_output)
    outcomes = _outcomes(jobs, process, workers, initializer, initargs)
    with (stop_signals_handled(_raise_interrupted), closing(outcomes),
          console.progress(label, len(jobs)) as advance):
        for outcome in outcomes:
            _report(outcome, summary, json_output)
            advance()
    summary.seconds = time.perf_counter() - start
    print_summary(summary)
    return summary


def _outcomes(
    jobs: list[Job],
    process: Callable[[Job], Outcome],
    workers: int,
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
) -> Iterator[Outcome]:
    if workers <= 1 or len(jobs) <= 1:
        if initializer:
            initializer(*initargs)
        yield from (guarded(process, job) for job in jobs)
        return
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    from functools import partial

    from ecgfill.errors import EcgfillError

    pool = ProcessPoolExecutor(workers, initializer=_worker_start,
                               initargs=(initializer, initargs))
    try:
        yield from pool.map(partial(_worker_job, process), jobs, chunksize=1)
    except BrokenProcessPool:
        _stop_workers(pool, jobs)
        raise EcgfillError("a worker process ended unexpectedly (killed?); batch stopped") from None
    except BaseException:
        _stop_workers(pool, jobs)
        raise
    pool.shutdown()


_IN_JOB = False  # in a worker: whether a record is being processed (writers may be open)


def _worker_start(initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    """Worker set-up: SIGINT/SIGTERM during a record raise (the writers clean up), between
    records end the worker at once."""
    for s in STOP_SIGNALS:
        signal.signal(s, _worker_signal)
    if initializer:
        initializer(*initargs)


def _worker_signal(signum: int, frame: object) -> None:
    if _IN_JOB:
        raise Interrupted(signum)
    os._exit(128 + signum)


def _worker_job(process: Callable[[Job], Outcome], job: Job) -> Outcome:
    global _IN_JOB
    _IN_JOB = True
    try:
        return guarded(process, job)
    except KeyboardInterrupt as exc:  # the writers have removed their temporaries by now
        os._exit(getattr(exc, "exit_code", 130))
    finally:
        _IN_JOB = False


def _stop_workers(pool: Any, jobs: list[Job]) -> None:
    """End every worker (SIGTERM, then SIGKILL after a grace period) and remove temporaries a
    killed worker could not (``.<name>.tmp-<pid>`` beside the outputs)."""
    processes = list(getattr(pool, "_processes", {}).values())
    _quiet_cancelled_futures()
    with stop_signals_handled(signal.SIG_IGN):  # a second Ctrl-C must not leave them running
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + WORKER_EXIT_SECONDS
        for proc in processes:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        pool.shutdown(wait=False, cancel_futures=True)
    pids = {proc.pid for proc in processes}
    for folder in {job.output.parent for job in jobs if job.output is not None}:
        for pid in pids:
            for temp in folder.glob(f".*.tmp-{pid}"):
                temp.unlink(missing_ok=True)


def _quiet_cancelled_futures() -> None:
    """From now on, ignore the InvalidStateError the executor's management thread raises when
    killed workers leave it setting results on futures we cancelled (a CPython race); it would
    print a traceback after the one-line "interrupted". Other thread errors still print."""
    import threading
    from concurrent.futures import InvalidStateError

    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not isinstance(args.exc_value, InvalidStateError):
            previous(args)

    threading.excepthook = hook


def _report(outcome: Outcome, summary: Summary, json_output: bool) -> None:
    if outcome.status == "ok":
        summary.ok += 1
    elif outcome.status == "skipped":
        summary.skipped += 1
    else:
        summary.failed += 1
        console.error(f"{outcome.input}: {outcome.error}")
    for note in outcome.warnings:
        summary.warnings_seen[note] += 1
        if summary.warnings_seen[note] <= REPEATED_WARNINGS_SHOWN:
            console.warn(f"{outcome.input}: {note}")
    if json_output:
        console.emit_json(outcome.to_json())


def _print_repeated_warnings(summary: Summary) -> None:
    for note, count in summary.warnings_seen.items():
        if count > REPEATED_WARNINGS_SHOWN:
            hidden = count - REPEATED_WARNINGS_SHOWN
            console.warn(f"{hidden} more records: {note} (all listed in --json)")


def print_summary(summary: Summary) -> None:
    """The final summary on stderr: a table on a terminal, one greppable line elsewhere."""
    _print_repeated_warnings(summary)
    total = summary.ok + summary.skipped + summary.failed
    rate = (summary.ok / summary.seconds) if summary.seconds > 0 else 0.0
    if console.progress_enabled():
        from rich.table import Table

        table = Table(show_header=True, header_style="bold")
        for column in ("records", "ok", "skipped", "failed", "seconds", "records/s"):
            table.add_column(column, justify="right")
        failed = f"[red]{summary.failed}[/]" if summary.failed else "0"
        table.add_row(str(total), str(summary.ok), str(summary.skipped), failed,
                      f"{summary.seconds:.1f}", f"{rate:.1f}")
        console.stderr.print(table)
        return
    console.info(
        f"{total} records: {summary.ok} ok, {summary.skipped} skipped (already done), "
        f"{summary.failed} failed in {summary.seconds:.1f} s ({rate:.1f} records/s)"
    )


def _out(job: Job) -> str | None:
    return str(job.output) if job.output else None
