"""A corpus of broken and suspicious ECG inputs, each made from a valid generated record (issue 9).

``build_corpus(root)`` writes every case into its own folder ``root/<case>/`` (record name ``r``)
and returns the cases. Each case says what the batch commands must report for it:

- ``error``: the regex the one error line / JSON ``error`` must match (the record is refused);
- ``warning``: a regex one of the reader's warnings must match (the record is processed);
- ``clinical``: a regex one of :func:`ecgfill.quality.clinical_warnings` must match (the record
  is processed; checked with the corpus model's rate ``MODEL_FS``);
- ``reconstruct_error``: where ``reconstruct`` refuses for another reason than ``derive-limb``
  (:data:`SERVED`: ``reconstruct`` serves the record that ``derive-limb`` refuses: a dead
  channel is left out of the measured leads, issue 16).

Cases that need a particular environment (unreadable files, a full or read-only output
directory) are simulated in ``tests/test_corpus.py``. :func:`build_linear_model` makes the small
linear model those tests reconstruct with, through the models package's own export.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgfill.io import write_record
from ecgfill.leads import STANDARD_LEADS
from ecgfill.record import ECGRecord
from ecgfill.synth import SynthParams, synthesize

NAME = "r"  # every case's record name
LEADS = ("I", "II", "V2")  # the measured leads of the base record (and the model's inputs)
FS = 250.0
SECONDS = 4.0
MODEL_FS = 250.0
SERVED = ""  # reconstruct_error: reconstruct serves the record (derive-limb refuses it)
NOISE_MV = 0.01  # a little noise: real recordings never hold a value exactly

Builder = Callable[[Path], Path]


@dataclass(frozen=True)
class Case:
    """One corpus input and what the commands must say about it."""

    name: str
    path: Path
    error: str | None = None
    warning: str | None = None
    clinical: str | None = None
    reconstruct_error: str | None = None

    def expected_error(self, command: str) -> str | None:
        if command == "reconstruct" and self.reconstruct_error is not None:
            return self.reconstruct_error or None
        return self.error


@dataclass(frozen=True)
class _Spec:
    build: Builder
    error: str | None
    warning: str | None
    clinical: str | None
    reconstruct_error: str | None


SPECS: dict[str, _Spec] = {}


def case(
    error: str | None = None,
    warning: str | None = None,
    clinical: str | None = None,
    reconstruct_error: str | None = None,
) -> Callable[[Builder], Builder]:
    """Register a builder ``f(folder) -> input path`` as the case named after it."""

    def register(build: Builder) -> Builder:
        SPECS[build.__name__] = _Spec(build, error, warning, clinical, reconstruct_error)
        return build

    return register


def build_corpus(root: Path) -> list[Case]:
    """Write every case under ``root`` and return them in a stable order."""
    cases = []
    for name, spec in SPECS.items():
        folder = root / name
        folder.mkdir(parents=True)
        path = spec.build(folder)
        cases.append(Case(name, path, spec.error, spec.warning, spec.clinical,
                          spec.reconstruct_error))
    return cases


# --------------------------------------------------------------------------------------------
# Valid material


def valid_record(
    leads: tuple[str, ...] = LEADS, seconds: float = SECONDS, fs: float = FS, **params: float
) -> ECGRecord:
    """A physiological record from the synthesiser (all 12 leads made, ``leads`` kept)."""
    settings = {"noise_mv": NOISE_MV, **params}
    return synthesize(seconds, fs, SynthParams(**settings), seed=7).select(list(leads))


def write_wfdb(folder: Path, record: ECGRecord | None = None) -> Path:
    """The record (default: the base record) as WFDB ``r.hea``/``r.dat``; returns the header."""
    write_record(record if record is not None else valid_record(), folder / NAME)
    return folder / f"{NAME}.hea"


def write_digital(
    folder: Path, digital: np.ndarray, names: list[str], *, fmt: str = "16", gain: float = 1000,
    units: str = "mV", fs: float = FS,
) -> Path:
    """A WFDB record from explicit digital samples ``[samples, signals]`` (wfdb-python)."""
    import wfdb

    n = digital.shape[1]
    wfdb.wrsamp(NAME, fs=fs, units=[units] * n, sig_name=names, d_signal=digital,
                fmt=[fmt] * n, adc_gain=[gain] * n, baseline=[0] * n, write_dir=str(folder))
    return folder / f"{NAME}.hea"


def base_digital() -> np.ndarray:
    """The base record in µV as int64 ``[samples, leads]``."""
    return np.rint(valid_record().signal.astype(np.float64) * 1000).astype(np.int64).T


def write_edf(folder: Path, record: ECGRecord | None = None) -> Path:
    write_record(record if record is not None else valid_record(), folder / NAME, fmt="edf")
    return folder / f"{NAME}.edf"


# --------------------------------------------------------------------------------------------
# Damage


def edit_record_line(header: Path, position: int, value: str | None) -> Path:
    """Replace (or with None, drop) whitespace field ``position`` of the record line."""
    return _edit_line(header, 0, position, value)


def edit_signal_field(header: Path, position: int, value: str, signal: int = 0) -> Path:
    """Replace whitespace field ``position`` of signal line ``signal`` (0-based)."""
    return _edit_line(header, 1 + signal, position, value)


def _edit_line(header: Path, line: int, position: int, value: str | None) -> Path:
    lines = header.read_text().splitlines()
    fields = lines[line].split()
    if value is None:
        del fields[position:]
    else:
        fields[position] = value
    lines[line] = " ".join(fields)
    header.write_text("\n".join(lines) + "\n")
    return header


def edit_header_text(header: Path, old: str, new: str) -> Path:
    text = header.read_text()
    assert old in text, f"{old!r} not in {header}"
    header.write_text(text.replace(old, new, 1))
    return header


# EDF header layout: fixed fields (name, width), then per-signal fields, each ``ns`` times.
EDF_FIXED = (("version", 8), ("patient", 80), ("recording", 80), ("start_date", 8),
             ("start_time", 8), ("header_bytes", 8), ("reserved", 44), ("n_records", 8),
             ("duration", 8), ("n_signals", 4))
EDF_SIGNAL = (("label", 16), ("transducer", 80), ("dimension", 8), ("physical_min", 8),
              ("physical_max", 8), ("digital_min", 8), ("digital_max", 8), ("prefilter", 80),
              ("samples_per_record", 8), ("signal_reserved", 32))


def patch_edf(path: Path, field: str, value: str, signal: int = 0) -> Path:
    """Overwrite one ASCII header field of an EDF file (space padded, cut to its width)."""
    raw = bytearray(path.read_bytes())
    n_signals = int(raw[252:256])
    offset = 0
    for name, width in EDF_FIXED:
        if name == field:
            break
        offset += width
    else:
        for name, width in EDF_SIGNAL:
            if name == field:
                offset += width * signal
                break
            offset += width * n_signals
        else:
            raise KeyError(field)
    raw[offset : offset + width] = value.encode("latin-1").ljust(width)[:width]
    path.write_bytes(bytes(raw))
    return path


def write_edf_channels(
    folder: Path, labels: list[str], rates: list[float], dimension: str = "mV",
    annotations: tuple[str, ...] = (),
) -> Path:
    """An EDF+ file with the given channel labels and rates: 1 mV sine waves, ±2 mV range,
    written in ``dimension`` (mV or uV), with ``annotations`` at time 0."""
    import pyedflib

    path = folder / f"{NAME}.edf"
    scale = {"mV": 1.0, "uV": 1000.0}[dimension]
    seconds = int(SECONDS)
    with pyedflib.EdfWriter(str(path), len(labels), file_type=pyedflib.FILETYPE_EDFPLUS) as writer:
        writer.setSignalHeaders([
            {"label": label, "dimension": dimension, "sample_frequency": rate,
             "physical_min": -2.0 * scale, "physical_max": 2.0 * scale, "digital_min": -32768,
             "digital_max": 32767}
            for label, rate in zip(labels, rates, strict=True)
        ])
        writer.writeSamples([scale * np.sin(np.arange(int(rate * seconds)) / 10.0)
                             for rate in rates])
        for text in annotations:
            writer.writeAnnotation(0, -1, text)
    return path


# --------------------------------------------------------------------------------------------
# The cases: WFDB record line


@case(error=r"signal count 'two' is not a number")
def record_line_signal_count_not_a_number(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 1, "two")


@case(error=r"record line needs a name and signal count")
def record_line_without_signal_count(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 1, None)


@case(error=r"header declares no signals")
def record_line_zero_signals(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 1, "0")


@case(error=r"declares 99999999 signals but has 3 lines")
def record_line_huge_signal_count(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 1, "99999999")


@case(error=r"corrupt header: record line holds '²'")
def record_line_superscript_digit(folder: Path) -> Path:
    """'²'.isdigit() is True but int('²') fails; wfdb-python drops the character instead.
    A record line is ASCII: anything else is refused by name."""
    return edit_record_line(write_wfdb(folder), 1, "²")


@case(error=r"segment count 'x' is not a number")
def record_line_bad_segment_count(folder: Path) -> Path:
    """Found by the fuzzer: a '/' made the record multi-segment for one check, not for
    wfdb-python (whose pattern needs digits after it)."""
    return edit_record_line(write_wfdb(folder), 0, f"{NAME}/x")


@case(error=r"sampling frequency 'fast' is not a positive number")
def record_line_fs_not_a_number(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 2, "fast")


@case(error=r"sampling frequency '0' is not a positive number")
def record_line_fs_zero(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 2, "0")


@case(error=r"sampling frequency '-250' is not a positive number")
def record_line_fs_negative(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 2, "-250")


@case(error=r"sampling frequency 'nan' is not a positive number")
def record_line_fs_nan(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 2, "nan")


@case(error=r"sampling frequency '1e300' is not a positive number")
def record_line_fs_absurd(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 2, "1e300")


@case(error=r"length '1000x' is not a number")
def record_line_length_not_a_number(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 3, "1000x")


@case(error=r"length '-5' is not a number")
def record_line_length_negative(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 3, "-5")


@case(error=r"zero-length record")
def record_line_zero_length(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 3, "0")


@case(error=r"header declares 1099511627776 samples per signal; refusing")
def record_line_absurd_length(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 3, str(2**40))


@case(error=r"data file r\.dat has fewer samples than the header declares")
def record_line_huge_length_small_file(folder: Path) -> Path:
    """Must be refused from the file size, before anything is allocated."""
    return edit_record_line(write_wfdb(folder), 3, str(2**27))


@case(error=r"checksum mismatch in signal I")
def record_line_length_shorter_than_data(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 3, "500")


@case(error=r"corrupt header: invalid syntax in record line")
def record_line_nul_byte(folder: Path) -> Path:
    return edit_record_line(write_wfdb(folder), 0, f"{NAME}\x00")


@case()
def record_line_without_length(folder: Path) -> Path:
    """Valid WFDB: the length follows from the data file's size."""
    return edit_record_line(write_wfdb(folder), 3, None)


@case(warning=r"start date/time '25:61:00 31/02/2020' not understood; left out")
def record_line_unparsable_date(folder: Path) -> Path:
    """An impossible date is dropped with a warning, not fatal."""
    header = write_wfdb(folder)
    return edit_header_text(header, f"{NAME} 3 250 1000", f"{NAME} 3 250 1000 25:61:00 31/02/2020")


# --------------------------------------------------------------------------------------------
# WFDB header as a whole


@case(error=r"empty header")
def header_empty(folder: Path) -> Path:
    header = write_wfdb(folder)
    header.write_text("")
    return header


@case(error=r"header has no record line")
def header_comments_only(folder: Path) -> Path:
    header = write_wfdb(folder)
    header.write_text("# nothing but a comment\n# and another\n")
    return header


@case(error=r"corrupt header")
def header_binary_garbage(folder: Path) -> Path:
    header = write_wfdb(folder)
    header.write_bytes(np.random.default_rng(9).bytes(400))
    return header


@case(error=r"declares 3 signals but has 2 lines")
def header_missing_signal_line(folder: Path) -> Path:
    header = write_wfdb(folder)
    lines = header.read_text().splitlines()
    header.write_text("\n".join(lines[:3]) + "\n")
    return header


@case()
def header_latin1_comments(folder: Path) -> Path:
    """Headers are not always UTF-8; a Latin-1 comment must not stop the reader."""
    header = write_wfdb(folder)
    header.write_bytes(header.read_bytes() + "# Patient: Müller, Zürich\n".encode("latin-1"))
    return header


@case(error=r"header file is a broken symbolic link")
def header_broken_symlink(folder: Path) -> Path:
    header = folder / f"{NAME}.hea"
    header.symlink_to(folder / "elsewhere.hea")
    return header


@case(error=r"header file is a symbolic link loop")
def header_symlink_loop(folder: Path) -> Path:
    header = folder / f"{NAME}.hea"
    header.symlink_to(header.name)
    return header


@case(error=r"header file is not a regular file")
def header_is_fifo(folder: Path) -> Path:
    """A FIFO must be refused without opening it (opening would block the batch)."""
    header = folder / f"{NAME}.hea"
    os.mkfifo(header)
    return header


# --------------------------------------------------------------------------------------------
# WFDB signal lines


@case(error=r"signal line 1: ADC gain 'abc\(0\)/mV' is not a number")
def signal_gain_not_a_number(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 2, "abc(0)/mV")


@case(error=r"signal line 2: ADC gain 'nan\(0\)/mV' is not a number")
def signal_gain_nan(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 2, "nan(0)/mV", signal=1)


@case(error=r"signal line 1: ADC gain '1e999\(0\)/mV' is not finite")
def signal_gain_infinite(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 2, "1e999(0)/mV")


@case(error=r"lead I: the header's calibration gives infinite values")
def signal_gain_tiny(folder: Path) -> Path:
    """Digital values divided by a subnormal gain overflow to ±inf."""
    return edit_signal_field(write_wfdb(folder), 2, "1e-320(0)/mV")


@case(warning=r"ADC gain 0 \(uncalibrated\) in the header; WFDB's default 200/mV assumed")
def signal_gain_zero(folder: Path) -> Path:
    """WFDB defines gain 0 as 'uncalibrated, assume 200': read, but said."""
    return edit_signal_field(write_wfdb(folder), 2, "0(0)/mV")


@case(error=r"signal line 1: ADC gain '1000\(x\)/mV' is not a number")
def signal_baseline_not_a_number(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 2, "1000(x)/mV")


@case(error=r"lead I: unknown unit 'furlong'")
def signal_unknown_unit(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 2, "1000(0)/furlong")


@case(error=r"signal line 1: unknown storage format 99")
def signal_unknown_storage_format(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 1, "99")


@case(error=r"signal line 1: storage format 'x16' is not valid")
def signal_storage_format_not_a_number(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 1, "x16")


@case(error=r"signal line 1: zero samples per frame")
def signal_zero_samples_per_frame(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 1, "16x0")


@case(error=r"data file r\.dat has fewer samples than the header declares")
def signal_huge_samples_per_frame(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 1, "16x100000")


@case(error=r"data file r\.dat has fewer samples than the header declares")
def signal_huge_byte_offset(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 1, "16+99999999999")


@case(error=r"signal line 1: ADC resolution 'xx' is not a number")
def signal_adc_resolution_not_a_number(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 3, "xx")


@case(error=r"signal line 3: checksum 'zz' is not a number")
def signal_checksum_not_a_number(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 6, "zz", signal=2)


@case(error=r"signal line 1: needs a file name and a storage format")
def signal_line_file_name_only(folder: Path) -> Path:
    return _edit_line(write_wfdb(folder), 1, 1, None)


@case(error=r"data file '\.\./r\.dat' is not a plain file name")
def signal_data_path_traversal(folder: Path) -> Path:
    """Data must come from the header's folder: never read (or link) files elsewhere."""
    return edit_signal_field(write_wfdb(folder), 0, f"../{NAME}.dat")


@case(error=r"data file '/etc/hostname' is not a plain file name")
def signal_data_absolute_path(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 0, "/etc/hostname")


@case(error=r"data file x{256}\.dat cannot be read \(File name too long\)")
def signal_data_name_too_long(folder: Path) -> Path:
    """Found by the fuzzer: a name the file system refuses (over 255 bytes) in a header that
    also needs rewriting (a bad date) crashed the rewrite's existence check."""
    header = edit_header_text(write_wfdb(folder), f"{NAME} 3 250 1000\n",
                              f"{NAME} 3 250 1000 25:61:00\n")
    return edit_signal_field(header, 0, "x" * 256 + ".dat")


@case(error=r"signal line 1: data file '\.dat' is not a plain file name")
def signal_data_name_not_ascii(folder: Path) -> Path:
    """Found by the fuzzer: wfdb-python drops non-ASCII characters ('ÿ.dat' becomes '.dat'),
    so the checks must look at the header the same way or they check another file."""
    return edit_signal_field(write_wfdb(folder), 0, "ÿ.dat")


@case(error=r"signal line 1: storage format '161000\(0\)/mV' is not valid")
def signal_non_breaking_space(folder: Path) -> Path:
    """Found by the fuzzer: Python splits on a no-break space, wfdb-python drops it and reads
    '16' and '1000' as one format field; the checks must see what wfdb-python sees."""
    header = write_wfdb(folder)
    return edit_header_text(header, f"{NAME}.dat 16 1000(0)/mV", f"{NAME}.dat 16\u00a01000(0)/mV")


@case(error=r"corrupt header: segment r is the record itself")
def multi_segment_refers_to_itself(folder: Path) -> Path:
    header = folder / f"{NAME}.hea"
    header.write_text(f"{NAME}/2 3 250 2000\n{NAME} 1000\n{NAME}_1 1000\n")
    return header


@case(error=r"missing segment header r_1\.hea")
def multi_segment_missing_segment(folder: Path) -> Path:
    write_record(valid_record(), folder / f"{NAME}_0")
    header = folder / f"{NAME}.hea"
    header.write_text(f"{NAME}/2 3 250 2000\n{NAME}_0 1000\n{NAME}_1 1000\n")
    return header


@case()
def multi_segment_valid(folder: Path) -> Path:
    for k in range(2):
        write_record(valid_record(), folder / f"{NAME}_{k}")
    header = folder / f"{NAME}.hea"
    header.write_text(f"{NAME}/2 3 250 2000\n{NAME}_0 1000\n{NAME}_1 1000\n")
    return header


@case(warning=r"lead I has 1000 non-finite samples \(50\.0%\)")
def multi_segment_variable_layout(folder: Path) -> Path:
    """A layout segment (length 0, no data) then segments with different leads; lead I is
    missing from the second, which reads as NaN."""
    record = valid_record()
    write_record(record, folder / f"{NAME}_1")
    write_record(record.select(["II", "V2"]), folder / f"{NAME}_2")
    layout = [f"~ 0 1000/mV 16 0 0 0 0 {lead}" for lead in LEADS]
    (folder / f"{NAME}_layout.hea").write_text("\n".join([f"{NAME}_layout 3 250 0", *layout]) + "\n")
    header = folder / f"{NAME}.hea"
    header.write_text(f"{NAME}/3 3 250 2000\n{NAME}_layout 0\n{NAME}_1 1000\n{NAME}_2 1000\n")
    return header


@case(error=r"declares 3 segments but has 2 lines")
def multi_segment_wrong_segment_count(folder: Path) -> Path:
    write_record(valid_record(), folder / f"{NAME}_0")
    header = folder / f"{NAME}.hea"
    header.write_text(f"{NAME}/3 3 250 1000\n{NAME}_0 1000\n{NAME}_0 0\n")
    return header


@case(error=r"segments hold 1000 samples, the record 1500")
def multi_segment_lengths_disagree(folder: Path) -> Path:
    write_record(valid_record(), folder / f"{NAME}_0")
    header = folder / f"{NAME}.hea"
    header.write_text(f"{NAME}/1 3 250 1500\n{NAME}_0 1000\n")
    return header


@case(error=r"zero-length record")
def multi_segment_layout_only(folder: Path) -> Path:
    """Found by the fuzzer: only a layout segment (no samples) crashed the conversion."""
    (folder / f"{NAME}_layout.hea").write_text(
        "\n".join([f"{NAME}_layout 3 250 0", *(f"~ 0 1000/mV 16 0 0 0 0 {n}" for n in LEADS)]) + "\n"
    )
    header = folder / f"{NAME}.hea"
    header.write_text(f"{NAME}/1 3 250\n{NAME}_layout 0\n")
    return header


@case(error=r"segment r_0 is itself multi-segment")
def multi_segment_nested(folder: Path) -> Path:
    (folder / f"{NAME}_0.hea").write_text(f"{NAME}_0/1 3 250 1000\n{NAME}_1 1000\n")
    write_record(valid_record(), folder / f"{NAME}_1")
    header = folder / f"{NAME}.hea"
    header.write_text(f"{NAME}/1 3 250 1000\n{NAME}_0 1000\n")
    return header


@case(error=r"segment r_0: data file r_0\.dat is not a regular file")
def multi_segment_fifo_data(folder: Path) -> Path:
    """wfdb-python opens segment data itself: a FIFO there must be caught beforehand."""
    write_record(valid_record(), folder / f"{NAME}_0")
    (folder / f"{NAME}_0.dat").unlink()
    os.mkfifo(folder / f"{NAME}_0.dat")
    header = folder / f"{NAME}.hea"
    header.write_text(f"{NAME}/1 3 250 1000\n{NAME}_0 1000\n")
    return header


# --------------------------------------------------------------------------------------------
# WFDB data files


@case(error=r"missing data file r\.dat")
def data_missing(folder: Path) -> Path:
    header = write_wfdb(folder)
    (folder / f"{NAME}.dat").unlink()
    return header


@case(error=r"data file r\.dat has fewer samples than the header declares")
def data_truncated(folder: Path) -> Path:
    header = write_wfdb(folder)
    data = folder / f"{NAME}.dat"
    data.write_bytes(data.read_bytes()[:1001])
    return header


@case(error=r"data file r\.dat has fewer samples than the header declares")
def data_empty(folder: Path) -> Path:
    header = write_wfdb(folder)
    (folder / f"{NAME}.dat").write_bytes(b"")
    return header


@case(error=r"data file r\.dat is a directory")
def data_is_directory(folder: Path) -> Path:
    header = write_wfdb(folder)
    data = folder / f"{NAME}.dat"
    data.unlink()
    data.mkdir()
    return header


@case(error=r"data file r\.dat is not a regular file")
def data_is_fifo(folder: Path) -> Path:
    header = write_wfdb(folder)
    data = folder / f"{NAME}.dat"
    data.unlink()
    os.mkfifo(data)
    return header


@case(error=r"data file r\.dat is a broken symbolic link")
def data_broken_symlink(folder: Path) -> Path:
    header = write_wfdb(folder)
    data = folder / f"{NAME}.dat"
    data.unlink()
    data.symlink_to(folder / "gone.dat")
    return header


@case(error=r"data file r\.dat is a symbolic link loop")
def data_symlink_loop(folder: Path) -> Path:
    header = write_wfdb(folder)
    data = folder / f"{NAME}.dat"
    data.unlink()
    data.symlink_to(data.name)
    return header


@case(error=r"checksum mismatch in signal II \(corrupt data\?\)")
def data_wrong_checksum(folder: Path) -> Path:
    header = write_wfdb(folder)
    data = folder / f"{NAME}.dat"
    raw = bytearray(data.read_bytes())
    raw[2 * 3 * 500 + 2] ^= 0x40  # one sample of lead II, mid-record
    data.write_bytes(bytes(raw))
    return header


@case(error=r"initial value mismatch in signal V2")
def data_wrong_initial_value(folder: Path) -> Path:
    return edit_signal_field(write_wfdb(folder), 5, "12345", signal=2)


@case(error=r"lead I has no finite samples",
      reconstruct_error=r"takes leads I,II,V2; the record has II,V2 \(lead I has no finite "
                        r"samples: not usable\)$")
def data_lead_all_invalid(folder: Path) -> Path:
    """A dead input of the corpus model: left out, the model cannot be fed (issue 16)."""
    record = valid_record()
    record.signal[0] = np.nan  # written as WFDB's invalid sample value
    return write_wfdb(folder, record)


@case(error=r"lead V5 has no finite samples", reconstruct_error=SERVED,
      warning=r"lead V5 has no finite samples")
def data_extra_lead_all_invalid(folder: Path) -> Path:
    """A dead channel beyond the model's inputs: reconstruct leaves it out of the measured
    leads and reconstructs it (issue 16)."""
    record = valid_record(("I", "II", "V2", "V5"))
    record.signal[3] = np.nan
    return write_wfdb(folder, record)


@case(error=r"lead I has no finite samples",
      reconstruct_error=r"^no usable lead: lead I has no finite samples; lead II has no finite "
                        r"samples; lead V2 has no finite samples$")
def data_all_leads_invalid(folder: Path) -> Path:
    record = valid_record()
    record.signal[:] = np.nan
    return write_wfdb(folder, record)


@case(warning=r"lead I is flat", reconstruct_error=r"^no usable lead: lead I is flat "
      r"\(peak-to-peak 0 µV\); lead II is flat \(peak-to-peak 0 µV\); lead V2 is flat")
def data_all_leads_flat(folder: Path) -> Path:
    record = valid_record()
    record.signal[:] = 0.0
    return write_wfdb(folder, record)


@case(warning=r"lead V2 has 250 non-finite samples \(25\.0%\)")
def data_lead_partly_invalid(folder: Path) -> Path:
    record = valid_record()
    record.signal[2, 100:350] = np.nan
    return write_wfdb(folder, record)


@case(error=r"record has a single sample")
def data_single_sample(folder: Path) -> Path:
    return write_wfdb(folder, valid_record(seconds=1 / FS))


# --------------------------------------------------------------------------------------------
# Valid files whose signal a clinician must be warned about


@case(warning=r"lead V2 is flat", reconstruct_error=r"takes leads I,II,V2; the record has I,II "
      r"\(lead V2 is flat \(peak-to-peak 0 µV\): not usable\)$")
def signal_flat_lead(folder: Path) -> Path:
    record = valid_record()
    record.signal[2] = 0.0
    return write_wfdb(folder, record)


@case(warning=r"lead V2 is flat \(peak-to-peak \d+ µV\): electrode off\?",
      reconstruct_error=r"\(lead V2 is flat \(peak-to-peak \d+ µV\): not usable\)$")
def signal_nearly_flat_lead(folder: Path) -> Path:
    record = valid_record()
    record.signal[2] = np.random.default_rng(3).uniform(-0.004, 0.004, record.n_samples)
    return write_wfdb(folder, record)


@case(clinical=r"lead I is flat for 3\.\d s of 8\.0 s")
def signal_flat_stretch(folder: Path) -> Path:
    record = valid_record(seconds=8.0)
    record.signal[0, 1000:1900] = record.signal[0, 1000]
    return write_wfdb(folder, record)


@case(clinical=r"lead II looks clipped at 2\.05 mV")
def signal_clipped_at_adc_rails(folder: Path) -> Path:
    """Format 212 holds ±2047: a 2.5x record at 1 µV per unit hits the rails on every R wave."""
    digital = np.clip(base_digital() * 2.5, -2048, 2047).astype(np.int64)
    return write_digital(folder, digital, list(LEADS), fmt="212")


@case(clinical=r"lead II has strong baseline wander")
def signal_baseline_wander(folder: Path) -> Path:
    return write_wfdb(folder, valid_record(seconds=10.0, baseline_wander_mv=1.5))


@case(clinical=r"lead II reaches \d+\.\d mV from its baseline, beyond what a heart produces")
def units_microvolts_labelled_millivolts(folder: Path) -> Path:
    """µV values in a header that says mV: every amplitude 1000 times too large."""
    return write_digital(folder, base_digital(), list(LEADS), gain=1.0, units="mV")


@case()
def units_microvolts(folder: Path) -> Path:
    return write_digital(folder, base_digital(), list(LEADS), gain=1.0, units="uV")


@case()
def units_volts(folder: Path) -> Path:
    return write_digital(folder, base_digital(), list(LEADS), gain=1e6, units="V")


@case(clinical=r"record lasts only 0\.50 s: too short to hold two heartbeats")
def record_half_a_second(folder: Path) -> Path:
    return write_wfdb(folder, valid_record(seconds=0.5))


@case(clinical=r"sampled at 100 Hz, far below the model's 250 Hz")
def record_rate_far_below_model(folder: Path) -> Path:
    return write_wfdb(folder, valid_record(fs=100.0))


# --------------------------------------------------------------------------------------------
# Lead names


@case(error=r"duplicated lead name II \(channel 'ECG II'\)")
def leads_duplicated(folder: Path) -> Path:
    return write_digital(folder, base_digital(), ["I", "II", "ECG II"])


@case(error=r"duplicated lead name I \(channel '-I'\)")
def leads_duplicated_inverted(folder: Path) -> Path:
    return write_digital(folder, base_digital(), ["I", "II", "-I"])


@case(error=r"no standard ECG leads found \(channels: foo, bar, baz\)")
def leads_all_unknown(folder: Path) -> Path:
    return write_digital(folder, base_digital(), ["foo", "bar", "baz"])


@case(warning=r"non-ECG channels left out: RESP")
def leads_some_unknown(folder: Path) -> Path:
    digital = np.concatenate([base_digital(), base_digital()[:, :1]], axis=1)
    return write_digital(folder, digital, [*LEADS, "RESP"])


@case(error=r"needs two limb leads", reconstruct_error=r"takes leads I,II,V2; the record has II,V2")
def leads_one_limb_lead(folder: Path) -> Path:
    return write_wfdb(folder, valid_record(leads=("II", "V2")))


@case()
def leads_aliases_and_inversion(folder: Path) -> Path:
    """D1, -aVR (an inverted lead) and C2 spell I, aVR and V2."""
    digital = base_digital()
    return write_digital(folder, np.stack([digital[:, 0], -digital[:, 1], digital[:, 2]], 1),
                         ["D1", "-aVR", "C2"])


@case()
def leads_all_twelve(folder: Path) -> Path:
    return write_wfdb(folder, valid_record(leads=STANDARD_LEADS))


# --------------------------------------------------------------------------------------------
# Folders


@case()
def folder_with_symlink_loop(folder: Path) -> Path:
    """Discovery must not follow a symlinked directory back into its own tree."""
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "up").symlink_to(folder.parent, target_is_directory=True)
    return write_wfdb(folder)


# --------------------------------------------------------------------------------------------
# EDF


@case(error=r"cannot read EDF/BDF")
def edf_garbage(folder: Path) -> Path:
    path = folder / f"{NAME}.edf"
    path.write_bytes(np.random.default_rng(5).bytes(3000))
    return path


@case(error=r"cannot read EDF/BDF")
def edf_empty(folder: Path) -> Path:
    path = folder / f"{NAME}.edf"
    path.write_bytes(b"")
    return path


@case(error=r"file is truncated: \d+ bytes where the header declares \d+")
def edf_truncated(folder: Path) -> Path:
    path = write_edf(folder)
    path.write_bytes(path.read_bytes()[:-1000])
    return path


@case(error=r"file is truncated")
def edf_header_only(folder: Path) -> Path:
    path = write_edf(folder)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(raw[184:192])])  # the header's own length
    return path


@case(error=r"not EDF\(\+\) or BDF\(\+\) compliant \(number of signals\)")
def edf_signal_count_not_a_number(folder: Path) -> Path:
    return patch_edf(write_edf(folder), "n_signals", "ab")


@case(error=r"compliant \(Number of Datarecords\)")
def edf_record_count_not_a_number(folder: Path) -> Path:
    return patch_edf(write_edf(folder), "n_records", "many")


@case(error=r"file is truncated: \d+ bytes where the header declares \d{12,}")
def edf_huge_record_count(folder: Path) -> Path:
    """Must be refused from the file size, before anything is allocated."""
    return patch_edf(write_edf(folder), "n_records", "99999999")


@case(error=r"data record duration is 0")
def edf_zero_duration(folder: Path) -> Path:
    return patch_edf(write_edf(folder), "duration", "0")


@case(error=r"compliant \(Duration\)")
def edf_duration_not_a_number(folder: Path) -> Path:
    return patch_edf(write_edf(folder), "duration", "soon")


@case(error=r"file is longer than its header says")
def edf_zero_samples_per_record(folder: Path) -> Path:
    return patch_edf(write_edf(folder), "samples_per_record", "0", signal=1)


@case(error=r"compliant \(Physical Maximum\)")
def edf_empty_physical_range(folder: Path) -> Path:
    path = patch_edf(write_edf(folder), "physical_min", "1")
    return patch_edf(path, "physical_max", "1")


@case(error=r"compliant \(Digital M")
def edf_empty_digital_range(folder: Path) -> Path:
    path = patch_edf(write_edf(folder), "digital_min", "100")
    return patch_edf(path, "digital_max", "100")


@case(error=r"lead ECG I: the header's calibration gives infinite values")
def edf_infinite_calibration(folder: Path) -> Path:
    return patch_edf(write_edf(folder), "physical_max", "1e308")


@case(error=r"the startdate is incorrect")
def edf_bad_start_date(folder: Path) -> Path:
    return patch_edf(write_edf(folder), "start_date", "31.02.xx")


@case(error=r"lead ECG I: unknown unit 'furlong'")
def edf_unknown_dimension(folder: Path) -> Path:
    return patch_edf(write_edf(folder), "dimension", "furlong")


@case(error=r"no standard ECG leads found \(channels: EEG Fp1, EEG Fp2\)")
def edf_no_ecg_channels(folder: Path) -> Path:
    return write_edf_channels(folder, ["EEG Fp1", "EEG Fp2"], [FS, FS])


@case(error=r"ECG leads have different sampling rates: \[125\.0, 250\.0\]")
def edf_mixed_rates(folder: Path) -> Path:
    return write_edf_channels(folder, ["ECG I", "ECG II"], [FS, FS / 2])


@case(error=r"duplicated lead name II")
def edf_duplicated_labels(folder: Path) -> Path:
    return write_edf_channels(folder, ["ECG I", "II", "ECG II"], [FS, FS, FS])


@case()
def edf_microvolts(folder: Path) -> Path:
    return write_edf_channels(folder, ["ECG I", "ECG II", "V2"], [FS, FS, FS], dimension="uV")


@case(warning=r"^ecgfill provenance gives no origin for III,V2 \(truncated\?\); taken as measured$")
def edf_truncated_provenance(folder: Path) -> Path:
    """What ecgfill wrote before issue 16: the origins annotation cut at 40 characters. The
    leads it leaves out are named instead of silently taken as measured."""
    truncated = "ecgfill-origins: I=measured II=measured III=derived V2=reconstructed"[:40]
    return write_edf_channels(folder, ["ECG I", "ECG II", "ECG III", "V2"], [FS] * 4,
                              annotations=("ecgfill 0.1.0: measured I,II", truncated))


@case(error=r"file is a broken symbolic link")
def edf_broken_symlink(folder: Path) -> Path:
    path = folder / f"{NAME}.edf"
    path.symlink_to(folder / "gone.edf")
    return path


# --------------------------------------------------------------------------------------------
# Seeds for the fuzzer (fuzz/fuzz_readers.py)

WFDB_SEED, EDF_SEED = 0, 1


def fuzz_input(kind: int, header: bytes, data: bytes = b"") -> bytes:
    """The fuzzer's input layout: a kind byte, then for WFDB the header's length (4 bytes, LE),
    the header and the data file; for EDF the file itself."""
    if kind == WFDB_SEED:
        return bytes([kind]) + struct.pack("<I", len(header)) + header + data
    return bytes([kind]) + header


def fuzz_seeds(root: Path) -> Iterator[tuple[str, bytes]]:
    """(case name, fuzzer input) for every corpus case made of regular files."""
    for item in build_corpus(root):
        path = item.path
        if not path.is_file() or path.is_symlink():
            continue
        if path.suffix == ".edf":
            yield item.name, fuzz_input(EDF_SEED, path.read_bytes())
            continue
        data = path.with_suffix(".dat")
        payload = data.read_bytes() if data.is_file() and not data.is_symlink() else b""
        yield item.name, fuzz_input(WFDB_SEED, path.read_bytes(), payload)


# --------------------------------------------------------------------------------------------
# A small linear model, made with the models package's own fit and export


def build_linear_model(folder: Path, input_leads: tuple[str, ...] = LEADS,
                       fs: float = MODEL_FS) -> Path:
    """Fit a ridge model on synthetic records, export it (``.pt``, ``.onnx``, card with SHA-256)
    into ``folder`` and return the card's path. Reused when already there."""
    import torch

    from ecgfill.models.base import (
        CARD_FORMAT,
        CHECKPOINT_FORMAT,
        build_network,
        config_to_dict,
        make_config,
        output_leads_for,
        save_checkpoint,
    )
    from ecgfill.models.linear import fit_ridge, set_linear_path
    from ecgfill.synth import synthesize_batch
    from ecgfill.train.loop import export_model

    name = f"corpus-linear-{'-'.join(input_leads)}".lower()
    card_path = folder / f"{name}.json"
    if card_path.is_file():
        return card_path
    signals = synthesize_batch(24, 8.0, fs, seed=11)
    index = [STANDARD_LEADS.index(n) for n in input_leads]
    outputs = output_leads_for(input_leads)
    config = make_config("linear", {"lag_seconds": "0.1"})
    card = {
        "format": CARD_FORMAT, "name": name, "version": "test", "arch": "linear",
        "input_leads": list(input_leads), "output_leads": list(outputs), "fs": fs,
        "window": int(8 * fs), "multiple": 1, "latent_channels": 0,
        "config": config_to_dict(config),
        "normalization": {"leads": list(STANDARD_LEADS),
                          "mean": [float(v) for v in signals.mean(axis=(0, 2))],
                          "std": [float(v) for v in signals.std(axis=(0, 2))]},
    }
    net = build_network(card)
    with torch.no_grad():
        z = net.normalize_inputs(torch.from_numpy(signals[:, index])).numpy()
        target = net.normalize_targets(torch.from_numpy(
            signals[:, [STANDARD_LEADS.index(n) for n in outputs]])).numpy()
    mask = np.ones((signals.shape[0], signals.shape[2]), dtype=bool)
    weight, bias = fit_ridge([(z, target, mask)], net.lag, config.ridge)
    set_linear_path(net, weight, bias)
    run = folder / "run"
    run.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run / "best.pt", {"format": CHECKPOINT_FORMAT, "card": card,
                                      "state_dict": net.state_dict()})
    export_model(run, folder)
    return card_path
