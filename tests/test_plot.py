"""`ecgfill plot`: the 12-lead printout on ECG paper, marked reconstructed leads, bands,
windows of long records, traces clipped to their rows, labels off the traces."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgfill.cli import app
from ecgfill.io import write_record
from ecgfill.leads import STANDARD_LEADS
from ecgfill.synth import synthesize

pytest.importorskip("matplotlib")

from ecgfill.plot import (  # noqa: E402
    BAND_ALPHA,
    BAND_COLOR,
    COLORS,
    LABEL_MM,
    MM_PER_MV,
    MM_PER_S,
    ROW_MM,
    Printout,
    figure,
    load,
)


def reconstructed_like(seconds: float = 10.0, fs: float = 250.0) -> Printout:
    rec = synthesize(seconds, fs, seed=3)
    origins = tuple("measured" if n in ("I", "II", "V4") else
                    "derived" if n in ("III", "aVR", "aVL", "aVF") else "reconstructed"
                    for n in STANDARD_LEADS)
    rec = replace(rec, origins=origins)
    half = np.array([0.0 if o != "reconstructed" else 0.1 for o in origins], np.float32)[:, None]
    lower = replace(rec, signal=rec.signal - half)
    upper = replace(rec, signal=rec.signal + half)
    return Printout(rec, lower, upper, 0.0, "r")


def pixels_like(png: Path, color: str, tol: float = 0.08) -> int:
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    img = imread(png)[..., :3]
    return int((np.abs(img - np.array(to_rgb(color))).max(axis=-1) < tol).sum())


def test_printout_on_paper_with_marked_leads_and_bands(tmp_path: Path) -> None:
    from ecgfill.plot import draw

    with_band = draw(reconstructed_like(), tmp_path / "band.png")
    plain = reconstructed_like()
    plain.lower = plain.upper = None
    without = draw(plain, tmp_path / "plain.png")
    from matplotlib.image import imread

    height, width = imread(with_band).shape[:2]
    assert width / 150 * 25.4 == pytest.approx(10 * MM_PER_S + 10, abs=1)  # 25 mm/s
    assert height > width / 3
    assert pixels_like(with_band, COLORS["reconstructed"]) > 0
    # the band's colour (blended on the paper) appears only where a band was given
    from matplotlib.colors import to_hex, to_rgb

    shade = to_hex(BAND_ALPHA * np.array(to_rgb(BAND_COLOR)) + (1 - BAND_ALPHA))  # on white
    assert pixels_like(with_band, shade, 0.04) > 10 * pixels_like(without, shade, 0.04) + 100


def test_traces_are_clipped_to_their_rows_and_labels_sit_off_them() -> None:
    out = reconstructed_like()
    out.record.signal[0] *= 20  # a very tall QRS in lead I
    fig = figure(out)
    ax = fig.axes[0]
    lines = [ln for ln in ax.lines if (ln.get_gid() or "").startswith("trace")]
    assert len(lines) == 13  # 12 leads + rhythm strip
    for line in lines:
        clip = line.get_clip_box()  # a rectangle clip becomes a box in display coordinates
        assert clip is not None
        (_, y0), (_, y1) = ax.transData.inverted().transform(clip.get_points())
        assert y1 - y0 == pytest.approx(ROW_MM, abs=0.01)
        data_y = line.get_ydata()
        if line.get_gid() == "trace I":
            assert data_y.max() - data_y.min() > ROW_MM  # taller than its row: clipped
    height = ax.get_ylim()[1]
    row = ROW_MM + LABEL_MM
    labels = [t for t in ax.texts if t.get_text().split()[0] in STANDARD_LEADS]
    assert len(labels) == 13
    for text in labels:
        y = text.get_position()[1]
        offset = (height - y) % row  # within a row, measured from its top
        assert offset <= LABEL_MM  # in the label strip above the traces
    marked = [t.get_text() for t in labels if "reconstructed" in t.get_text()]
    assert {m.split()[0] for m in marked} == {"V1", "V2", "V3", "V5", "V6"}
    assert MM_PER_MV == 10.0
    assert not ax.get_legend()


def test_plot_command_windows_long_records(tmp_path: Path) -> None:
    rec = synthesize(60.0, 500.0, seed=1).select(["I", "II", "V4"])
    write_record(rec, tmp_path / "in" / "long")
    result = CliRunner().invoke(app, ["plot", str(tmp_path / "in"), str(tmp_path / "png"),
                                      "--start", "30", "--seconds", "10"])
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "png" / "long.png").is_file()
    window = load(tmp_path / "in" / "long.hea", 30.0, 10.0)
    assert window.start == 30.0 and window.record.n_samples == 10 * 500
    np.testing.assert_allclose(window.record.lead("I"),
                               rec.lead("I")[30 * 500: 40 * 500], atol=1e-3)
    result = CliRunner().invoke(app, ["plot", str(tmp_path / "in" / "long.hea"),
                                      str(tmp_path / "png2"), "--start", "90"])
    assert result.exit_code == 1 and "shorter" in result.stderr
