"""Turn folders of ECG records into one reproducible training dataset (``ecgfill preprocess``).

Dataset layout (``OUTPUT_DIR/``):

``signals.npy``
    float32 ``[N, 12, T]`` in mV, leads in :data:`ecgfill.leads.STANDARD_LEADS` order, resampled
    to ``fs`` and cropped to ``T = round(seconds * fs)``; zero past each record's ``n_valid``.
``manifest.csv``
    One row per input record, excluded ones too: :data:`MANIFEST_COLUMNS`. ``split`` is train,
    val, test or excluded; ``index`` is the row in signals.npy (empty when excluded); ``flags``
    are ``;``-joined quality flags (``nan_ratio:0.0012``, ``flat:V1,V2``, ``clipped:II``,
    ``short:4.2s``); ``exclude_reason`` is ``code: detail``.
``stats.json``
    Per-lead mean and std (mV) over the valid samples of the train split.
``dataset.json``
    ecgfill version, command line, fs, seconds, the filters applied (inference applies the same
    through :func:`ecgfill.dsp.apply_filters`), counts and how the splits were made.

Each record is read, short NaN gaps are interpolated, missing limb leads derived, the first
``seconds`` (plus a margin so no edge falls inside the kept part) resampled to ``fs``, optionally
high-passed, and cropped or zero-padded to ``T``. Records are processed in sorted order (in
parallel, results consumed in order) so the same inputs give the same bytes. The dataset is
built in a hidden sibling directory and renamed into place at the end.

Modules: :mod:`~ecgfill.preprocess.config` (options, folds), :mod:`~ecgfill.preprocess.record`
(one record to one row), :mod:`~ecgfill.preprocess.splits` (splits CSV, patient ids,
assignment), :mod:`~ecgfill.preprocess.dataset` (writing the files), :mod:`~ecgfill.preprocess.run`
(the run).
"""

from ecgfill.preprocess.config import (
    EXCLUDED,
    MAX_GAP_MS,
    MIN_SECONDS,
    SPLITS,
    FoldSplits,
    PreprocessConfig,
    parse_folds,
)
from ecgfill.preprocess.dataset import MANIFEST_COLUMNS
from ecgfill.preprocess.record import process_record, quality_flags
from ecgfill.preprocess.run import PreprocessSummary, preprocess
from ecgfill.preprocess.splits import SplitCandidate, SplitTable, assign_splits

__all__ = [
    "EXCLUDED",
    "MANIFEST_COLUMNS",
    "MAX_GAP_MS",
    "MIN_SECONDS",
    "SPLITS",
    "FoldSplits",
    "PreprocessConfig",
    "PreprocessSummary",
    "SplitCandidate",
    "SplitTable",
    "assign_splits",
    "parse_folds",
    "preprocess",
    "process_record",
    "quality_flags",
]
