"""EDF, EDF+ and BDF reader (pyedflib)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ecgfill.errors import RecordError
from ecgfill.io.channels import PROVENANCE_TAGS, ChannelSet, build_record
from ecgfill.io.names import map_channels, normalize_lead_name
from ecgfill.io.times import from_edf_start
from ecgfill.record import ECGRecord

FIXED_HEADER_BYTES = 256
RATE_DECIMALS = 6  # sampling rates are rounded to 1 µHz
SAMPLES_FIELD = 216  # per-signal "samples per data record" fields start at 256 + ns * 216
INT16_MAX = 32767  # digital ranges within ±this are written back to WFDB exactly
GAIN_DIGITS = 12  # significant digits kept of a gain computed from EDF's 8-character fields
BASELINE_TOLERANCE = 1e-3  # a digital offset this close to an integer counts as that integer


class EdfReader:
    """An EDF/EDF+/BDF file opened for reading, whole or in chunks."""

    def __init__(self, path: str | Path, channel_map: Mapping[str, str] | None = None) -> None:
        import pyedflib

        self.path = Path(path)
        self.channel_map = channel_map
        check_size(self.path)
        try:
            self._reader = pyedflib.EdfReader(str(self.path))
        except OSError as exc:
            problem = str(exc).strip().removeprefix(f"{self.path}:").strip() or "unreadable file"
            raise RecordError(self.path, f"cannot read EDF/BDF: {problem}") from None
        try:
            self._open()
        except ZeroDivisionError:
            self.close()
            raise RecordError(self.path, "cannot read EDF/BDF: data record duration is 0") from None
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        reader = self._reader
        labels = map_channels([label.strip() for label in reader.getSignalLabels()],
                              self.channel_map)
        # samples / duration in floating point: 7 / 0.28 s gives 24.999999999999996 Hz
        rates = [round(float(reader.getSampleFrequency(i)), RATE_DECIMALS)
                 for i in range(len(labels))]
        self.ecg = [i for i, label in enumerate(labels) if normalize_lead_name(label) is not None]
        if not self.ecg:
            raise RecordError(self.path, f"no standard ECG leads found (channels: {', '.join(labels)})")
        ecg_rates = Counter(rates[i] for i in self.ecg)
        if len(ecg_rates) > 1:
            raise RecordError(self.path, f"ECG leads have different sampling rates: {sorted(ecg_rates)}")
        self.fs = rates[self.ecg[0]]
        lengths = {int(reader.getNSamples()[i]) for i in self.ecg}
        if len(lengths) > 1 or 0 in lengths:
            raise RecordError(self.path, "ECG leads have different or zero lengths")
        self.n_samples = lengths.pop()
        self.labels = [labels[i] for i in self.ecg]
        self.units = [reader.getPhysicalDimension(i).strip() or "mV" for i in self.ecg]
        self.others = [labels[i] for i in range(len(labels)) if i not in self.ecg]
        header = reader.getHeader()
        patient = header.get("patientcode")
        self.comments = [f"patient_id: {patient}"] if patient else []
        self.comments += [str(text) for onset, text in zip(*reader.readAnnotations()[::2],
                                                            strict=True)
                          if onset == 0 and str(text).startswith(PROVENANCE_TAGS)]
        self.start = from_edf_start(header["startdate"]) if header.get("startdate") else None
        self.adc = [_exact_adc(reader.getSignalHeader(i)) for i in self.ecg]

    def read(self, start: int, stop: int) -> ECGRecord:
        signal = np.stack([self._reader.readSignal(i, start, stop - start) for i in self.ecg])
        channels = ChannelSet(signal=signal, labels=self.labels, units=self.units, fs=self.fs,
                              adc=self.adc, start=self.start)
        record = build_record(channels, str(self.path), list(self.comments))
        if self.others:
            record.other_channels = tuple(self.others)
            record.warnings.append(f"non-ECG channels left out: {', '.join(self.others)}")
        return record

    def verify(self) -> None:
        """EDF carries no checksums; nothing to verify."""

    def checksum_status(self) -> str:
        return "not stored (EDF)"

    def channels(self) -> list[dict[str, object]]:
        """Every signal as the header describes it: label, dimension, gain and baseline of its
        integers (per unit of the dimension), storage."""
        import pyedflib

        bdf = self._reader.filetype in (pyedflib.FILETYPE_BDF, pyedflib.FILETYPE_BDFPLUS)
        storage = "BDF 24-bit" if bdf else "EDF 16-bit"
        out: list[dict[str, object]] = []
        for i in range(self._reader.signals_in_file):
            head = self._reader.getSignalHeader(i)
            gain, baseline = edf_scale(head) or (None, None)
            if baseline is not None:  # 32767 - 32.767 * 1000 is -3.6e-12, not 0
                baseline = round(baseline, 6) + 0.0
            out.append({"label": head["label"].strip(), "units": head["dimension"].strip() or "mV",
                        "gain": gain, "baseline": baseline, "storage": storage})
        return out

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> EdfReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def edf_scale(header: dict[str, object]) -> tuple[float, float] | None:
    """(gain per unit, baseline) of a signal's integers (physical = (integer - baseline) / gain),
    from EDF's 8-character fields; None for an empty physical range."""
    dmin, dmax = float(header["digital_min"]), float(header["digital_max"])
    pmin, pmax = float(header["physical_min"]), float(header["physical_max"])
    if pmax == pmin:
        return None
    gain = float(f"{(dmax - dmin) / (pmax - pmin):.{GAIN_DIGITS}g}")  # 1000, not 999.9999999999999
    return gain, dmax - pmax * gain


def _exact_adc(header: dict[str, object]) -> tuple[float, int] | None:
    """(gain per unit, baseline) of a signal's integers, when WFDB format 16 holds them as they
    are: a digital range within ±32767 and an integer offset."""
    scale = edf_scale(header)
    inside = -INT16_MAX <= float(header["digital_min"]) <= float(header["digital_max"]) <= INT16_MAX
    if scale is None or scale[0] <= 0 or not inside:
        return None
    gain, baseline = scale
    if abs(baseline - round(baseline)) > BASELINE_TOLERANCE:
        return None
    return gain, round(baseline)


def check_size(path: Path) -> None:
    """Refuse a file whose size does not match its header before pyedflib opens it (pyedflib
    prints its own size complaint on stdout, which would corrupt ``--json`` output).

    Headers whose fields do not parse are left to pyedflib, which names the broken field.
    """
    try:
        with open(path, "rb") as fh:
            fixed = fh.read(FIXED_HEADER_BYTES)
            n_signals = int(fixed[252:256])
            header_bytes = int(fixed[184:192])
            n_records = int(fixed[236:244])
            fh.seek(FIXED_HEADER_BYTES + n_signals * SAMPLES_FIELD)
            fields = fh.read(8 * n_signals)
            size = fh.seek(0, 2)
    except OSError as exc:
        raise RecordError(path, f"cannot read file: {exc.strerror or exc}") from None
    except ValueError:
        return
    try:
        per_record = sum(int(fields[8 * i : 8 * i + 8]) for i in range(n_signals))
    except ValueError:
        return
    bytes_per_sample = 3 if fixed[:1] == b"\xff" else 2  # BDF stores 24-bit samples
    expected = header_bytes + n_records * per_record * bytes_per_sample
    if n_records > 0 and n_signals > 0 and header_bytes > 0 and size != expected:
        state = "truncated" if size < expected else "longer than its header says"
        raise RecordError(
            path, f"file is {state}: {size} bytes where the header declares {expected}"
        )


def header_fs(handle: BinaryIO) -> float | None:
    """The most common sampling rate of an EDF/BDF file's signals (annotations left out, the
    higher rate on a tie), from its header alone; None when it gives none."""
    head = handle.read(FIXED_HEADER_BYTES)
    if len(head) < FIXED_HEADER_BYTES:
        return None
    duration = float(head[244:252].decode("ascii").strip() or "nan")
    n_signals = int(head[252:256].decode("ascii").strip())
    rest = handle.read(n_signals * FIXED_HEADER_BYTES)
    labels = [rest[16 * i : 16 * i + 16].decode("latin-1").strip() for i in range(n_signals)]
    offset = n_signals * SAMPLES_FIELD
    per_record = [int(rest[offset + 8 * i : offset + 8 * i + 8].decode("ascii").strip() or 0)
                  for i in range(n_signals)]
    rates = Counter(n / duration for label, n in zip(labels, per_record, strict=True)
                    if n > 0 and "annotation" not in label.lower())
    if not rates or not duration > 0:
        return None
    return max(rates.items(), key=lambda kv: (kv[1], kv[0]))[0]
