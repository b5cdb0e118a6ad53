"""Readers, writer and derive-limb on every kind of record in ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgfill.api import derive_limb_leads
from ecgfill.io import read_record, write_record
from ecgfill.leads import STANDARD_LEADS

pytestmark = pytest.mark.realdata

KINDS = {
    "ptb-xl/records100/00000/00001_lr.hea": (100.0, 1000, 8),
    "ptb-xl/records500-cinc2021/HR00001.hea": (500.0, 5000, 12),
    "cpsc2018/A0001.hea": (500.0, None, 12),
    "cpsc2018-extra/Q1847.hea": (500.0, None, 12),
    "georgia/E00271.hea": (500.0, 5000, 12),
    "georgia/gain-2020/E00002.hea": (500.0, 5000, 12),
    "chapman/JS00001.hea": (500.0, 5000, 12),
    "ningbo/JS45542.hea": (500.0, 5000, 12),
    "ptbdb/patient001/s0010_re.hea": (1000.0, 38400, 12),
}


@pytest.mark.parametrize("rel", sorted(KINDS))
def test_every_kind_reads_and_round_trips(shared_data: Path, tmp_path: Path, rel: str) -> None:
    fs, n, n_leads = KINDS[rel]
    rec = read_record(shared_data / rel)
    assert rec.fs == fs and len(rec.leads) == n_leads and (n is None or rec.n_samples == n)
    assert np.isfinite(rec.signal).all() and np.abs(rec.signal).max() < 30
    write_record(rec, tmp_path / "out")
    back = read_record(tmp_path / "out.hea")
    assert back.leads == rec.leads
    assert np.abs(back.signal - rec.signal).max() <= 0.0005 + 1e-6


def test_gain_from_the_header_is_trusted(shared_data: Path) -> None:
    a = read_record(shared_data / "georgia/E00002.hea")
    b = read_record(shared_data / "georgia/gain-2020/E00002.hea")
    np.testing.assert_allclose(b.signal * 4880 / 1000, a.signal, atol=1e-4)


def test_frank_leads_reported_and_flat_leads_flagged(shared_data: Path) -> None:
    assert read_record(shared_data / "ptbdb/patient001/s0010_re").other_channels == ("vx", "vy", "vz")
    warnings = read_record(shared_data / "ningbo/JS45542.hea").warnings
    flat = {f"lead V{k} is flat (peak-to-peak 0 µV): electrode off?" for k in range(1, 7)}
    assert flat <= set(warnings)


def test_derive_limb_reproduces_stored_limb_leads(shared_data: Path, tmp_path: Path) -> None:
    """PTB-XL 500 Hz: III, aVR, aVL, aVF from I and II within the dataset's rounding (0.02 mV)."""
    worst = 0.0
    headers = sorted((shared_data / "ptb-xl/records500-cinc2021").glob("*.hea"))
    assert len(headers) >= 30
    for hea in headers:
        full = read_record(hea)
        derived = derive_limb_leads(full.select(["I", "II", *STANDARD_LEADS[6:]]))
        assert derived.leads == STANDARD_LEADS
        for name in ("III", "aVR", "aVL", "aVF"):
            worst = max(worst, float(np.abs(derived.lead(name) - full.lead(name)).max()))
        for name in ("I", "II", "V1", "V6"):
            assert np.array_equal(derived.lead(name), full.lead(name))
        write_record(derived, tmp_path / hea.stem)
        back = read_record(tmp_path / f"{hea.stem}.hea")
        assert np.abs(back.signal - derived.signal).max() <= 0.0005 + 1e-6
    assert worst <= 0.02


def test_ptbxl_flac_derive_limb_gives_twelve_leads(shared_data: Path) -> None:
    rec = derive_limb_leads(read_record(shared_data / "ptb-xl/records100/00000/00001_lr.hea"))
    assert rec.leads == STANDARD_LEADS
    assert rec.leads_with("derived") == ["III", "aVR", "aVL", "aVF"]
