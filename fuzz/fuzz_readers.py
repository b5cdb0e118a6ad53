"""Fuzz the record readers with atheris (libFuzzer): ``read_record`` on mutated WFDB headers and
data files, and on mutated EDF files. Any exception other than RecordError/EcgfillError is a
finding: libFuzzer stops and saves the input as ``crash-*``.

One input is a kind byte (even: WFDB, odd: EDF), then for WFDB a 4-byte little-endian header
length, the header (``r.hea``) and the data file (``r.dat``); for EDF the file itself (``r.edf``).
Seeds come from the broken-input corpus of the tests (``tests/corpus.py``)::

    pip install atheris
    python fuzz/fuzz_readers.py --make-seeds /tmp/fuzz/seeds
    mkdir -p /tmp/fuzz/work && cd /tmp/fuzz   # libFuzzer writes crash-* files here
    python $REPO/fuzz/fuzz_readers.py work seeds -max_total_time=600 -rss_limit_mb=2048 \\
        -timeout=20 -max_len=65536
    python $REPO/fuzz/fuzz_readers.py crash-...   # replay one input
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import struct
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(tempfile.mkdtemp(prefix="ecgfill-fuzz-", dir="/dev/shm" if Path("/dev/shm").is_dir()
                             else None))


def make_seeds(target: Path) -> int:
    """Write one seed file per corpus case made of regular files; returns how many."""
    sys.path.insert(0, str(ROOT / "tests"))
    from corpus import fuzz_seeds

    target.mkdir(parents=True, exist_ok=True)
    count = 0
    with tempfile.TemporaryDirectory() as scratch:
        for name, data in fuzz_seeds(Path(scratch)):
            (target / name).write_bytes(data)
            count += 1
    return count


def split_input(data: bytes) -> tuple[str, dict[str, bytes]]:
    """The record file to read and the files to write, from one fuzzer input."""
    if not data:
        return "r.hea", {"r.hea": b""}
    if data[0] % 2:
        return "r.edf", {"r.edf": data[1:]}
    body = data[1:]
    size = struct.unpack("<I", body[:4].ljust(4, b"\0"))[0] % (len(body) + 1)
    return "r.hea", {"r.hea": body[4 : 4 + size], "r.dat": body[4 + size :]}


def test_one_input(data: bytes) -> None:
    from ecgfill.errors import EcgfillError
    from ecgfill.io import read_record

    target, files = split_input(data)
    for old in WORK.iterdir():
        old.unlink()
    for name, content in files.items():
        (WORK / name).write_bytes(content)
    with contextlib.suppress(EcgfillError):  # the readers' one way to refuse a file
        read_record(WORK / target)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--make-seeds":
        print(f"{make_seeds(Path(sys.argv[2]))} seeds written to {sys.argv[2]}")
        return
    import atheris

    warnings.simplefilter("ignore", DeprecationWarning)  # library notices are not findings
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("error", RuntimeWarning)  # numpy overflow notes would reach stderr
    atexit.register(shutil.rmtree, WORK, True)
    with atheris.instrument_imports(include=["ecgfill", "wfdb"]):
        import wfdb  # noqa: F401  (instrumented for coverage feedback)

        import ecgfill.io.edf_reader
        import ecgfill.io.wfdb_reader  # noqa: F401
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
