"""Lead algebra and lead-name normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecgfill.io.names import normalize_lead_name, parse_lead_list
from ecgfill.leads import STANDARD_LEADS, expand_independent
from ecgfill.record import ECGRecord


def test_einthoven_goldberger_identities(random_record: ECGRecord) -> None:
    i, ii = random_record.lead("I"), random_record.lead("II")
    limb = ECGRecord(np.stack([i, ii]), 250.0, ("I", "II")).with_limb_leads()
    assert limb.leads == STANDARD_LEADS[:6]
    np.testing.assert_allclose(limb.lead("III"), ii - i, atol=1e-6)
    np.testing.assert_allclose(limb.lead("aVR"), -(i + ii) / 2, atol=1e-6)
    np.testing.assert_allclose(limb.lead("aVL"), i - ii / 2, atol=1e-6)
    np.testing.assert_allclose(limb.lead("aVF"), ii - i / 2, atol=1e-6)
    augmented = limb.lead("aVR") + limb.lead("aVL") + limb.lead("aVF")
    assert np.abs(augmented).max() < 1e-5
    assert limb.origins == ("measured", "measured", "derived", "derived", "derived", "derived")


@pytest.mark.parametrize("pair", [("I", "III"), ("II", "III"), ("aVR", "aVF"), ("III", "aVL"), ("aVL", "I")])
def test_any_two_of_i_ii_iii(pair: tuple[str, str], random_record: ECGRecord) -> None:
    full = random_record.select(["I", "II"]).with_limb_leads()
    given_two = full.select(list(pair))
    rebuilt = given_two.with_limb_leads()
    for name in STANDARD_LEADS[:6]:
        np.testing.assert_allclose(rebuilt.lead(name), full.lead(name), atol=1e-5)
    for name in pair:  # measured leads are never altered
        assert np.array_equal(rebuilt.lead(name), given_two.lead(name))


def test_one_limb_lead_is_not_enough(random_record: ECGRecord) -> None:
    with pytest.raises(ValueError, match="needs two limb leads"):
        random_record.select(["II", "V1"]).with_limb_leads()


def test_expand_independent_matches_record_algebra(random_record: ECGRecord) -> None:
    independent = random_record.select(["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]).signal
    expanded = expand_independent(independent[None].astype(np.float64))[0]
    rec = random_record.select(["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]).with_limb_leads()
    np.testing.assert_allclose(expanded, rec.in_standard_order().signal, atol=1e-5)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("I", ("I", 1.0)), ("i", ("I", 1.0)), ("ECG I", ("I", 1.0)), ("ECG V1", ("V1", 1.0)),
        ("avr", ("aVR", 1.0)), ("AVR", ("aVR", 1.0)), ("-aVR", ("aVR", -1.0)), ("v6", ("V6", 1.0)),
        ("EKG_aVF", ("aVF", 1.0)), ("C3", ("V3", 1.0)), ("D2", ("II", 1.0)), ("iii", ("III", 1.0)),
        ("vx", None), ("RESP", None), ("Marker", None), ("", None),
    ],
)
def test_normalize_lead_name(label: str, expected: tuple[str, float] | None) -> None:
    assert normalize_lead_name(label) == expected


@given(st.sampled_from(STANDARD_LEADS), st.sampled_from(["", "ECG ", "ecg_", "EKG-"]), st.booleans())
def test_normalize_is_case_and_prefix_insensitive(name: str, prefix: str, upper: bool) -> None:
    label = prefix + (name.upper() if upper else name.lower())
    assert normalize_lead_name(label) == (name, 1.0)


@given(st.text(max_size=12))
def test_normalize_never_crashes(label: str) -> None:
    result = normalize_lead_name(label)
    assert result is None or result[0] in STANDARD_LEADS


def test_parse_lead_list() -> None:
    assert parse_lead_list("i, ii ,v4") == ("I", "II", "V4")
    with pytest.raises(ValueError, match="twice"):
        parse_lead_list("I,i")
    with pytest.raises(ValueError, match="unknown"):
        parse_lead_list("I,vx")
