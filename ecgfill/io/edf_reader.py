"""EDF, EDF+ and BDF reader (pyedflib)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ecgfill.errors import RecordError
from ecgfill.io.channels import ChannelSet, build_record
from ecgfill.io.names import normalize_lead_name
from ecgfill.record import ECGRecord


def read_edf(path: str | Path) -> ECGRecord:
    """Read an EDF/EDF+/BDF file; ECG leads must share one sampling rate."""
    import pyedflib

    path = Path(path)
    try:
        reader = pyedflib.EdfReader(str(path))
    except OSError as exc:
        raise RecordError(path, f"cannot read EDF/BDF: {str(exc).strip() or 'unreadable file'}") from None
    try:
        labels = [label.strip() for label in reader.getSignalLabels()]
        rates = [float(reader.getSampleFrequency(i)) for i in range(len(labels))]
        ecg = [i for i, label in enumerate(labels) if normalize_lead_name(label) is not None]
        if not ecg:
            raise RecordError(path, f"no standard ECG leads found (channels: {', '.join(labels)})")
        ecg_rates = Counter(rates[i] for i in ecg)
        if len(ecg_rates) > 1:
            raise RecordError(path, f"ECG leads have different sampling rates: {sorted(ecg_rates)}")
        fs = rates[ecg[0]]
        lengths = {int(reader.getNSamples()[i]) for i in ecg}
        if len(lengths) > 1 or 0 in lengths:
            raise RecordError(path, "ECG leads have different or zero lengths")
        signal = np.stack([reader.readSignal(i) for i in ecg])
        units = [reader.getPhysicalDimension(i).strip() or "mV" for i in ecg]
        others = [labels[i] for i in range(len(labels)) if i not in ecg]
        comments = []
        header = reader.getHeader()
        if header.get("patientcode"):
            comments.append(f"patient_id: {header['patientcode']}")
    finally:
        reader.close()
    record = build_record(
        ChannelSet(signal=signal, labels=[labels[i] for i in ecg], units=units, fs=fs),
        str(path),
        comments,
    )
    if others:
        record.other_channels = tuple(others)
        record.warnings.append(f"non-ECG channels left out: {', '.join(others)}")
    return record
