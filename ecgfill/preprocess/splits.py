"""Train, val and test: a splits CSV (patient ids, ``strat_fold``), patient ids from header
comments, and the assignment that never lets a patient span two splits.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgfill.errors import UsageError, first_line
from ecgfill.io.names import ptbxl_ecg_id
from ecgfill.preprocess.config import SPLITS, FoldSplits

_PATIENT_COMMENT = re.compile(
    r"^\s*#?\s*(?:patient|subject)[\s_-]*(?:id)?\s*[:=]\s*(\S+)\s*$", re.IGNORECASE
)


def patient_id_from_comments(comments: Sequence[str]) -> str | None:
    """A patient id from header comments such as ``patient_id: 15709`` or ``#Patient: 12``."""
    for line in comments:
        match = _PATIENT_COMMENT.match(line)
        if match:
            return _normalise_id(match[1])
    return None


def _normalise_id(value: str) -> str | None:
    """``"15709.0"`` -> ``"15709"``; empty and NaN -> None."""
    text = value.strip()
    if not text or text.lower() in {"nan", "none", "unknown"}:
        return None
    if re.fullmatch(r"\d+\.0*", text):
        return text.split(".")[0]
    return text


@dataclass(frozen=True)
class SplitRow:
    """What a splits CSV says about one record."""

    patient_id: str | None
    strat_fold: int | None


class SplitTable:
    """A splits CSV (``patient_id``, optional ``strat_fold``) indexed for record lookup.

    Rows match a record by ``filename_lr``/``filename_hr``/``record`` as a suffix of its path
    (without extension), or by ``ecg_id`` against the record name (see
    :func:`~ecgfill.io.names.ptbxl_ecg_id`).
    """

    KEY_COLUMNS = ("filename_lr", "filename_hr", "record")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.by_path: dict[str, SplitRow] = {}
        self.by_ecg_id: dict[int, SplitRow] = {}
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                columns = set(reader.fieldnames or ())
                if not columns & {*self.KEY_COLUMNS, "ecg_id"}:
                    raise UsageError(
                        f"{path}: splits CSV needs an ecg_id, filename_lr, filename_hr or record "
                        "column to match records"
                    )
                for line, row in enumerate(reader, start=2):
                    self._add(row, line)
        except OSError as exc:
            raise UsageError(f"{path}: cannot read splits CSV ({exc.strerror or exc})") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: not a readable CSV ({first_line(exc)})") from None

    def _add(self, row: dict[str, str | None], line: int) -> None:
        fold_text = (row.get("strat_fold") or "").strip()
        try:
            fold = int(float(fold_text)) if fold_text else None
        except ValueError:
            raise UsageError(f"{self.path}:{line}: strat_fold {fold_text!r} is not a number") from None
        entry = SplitRow(_normalise_id(row.get("patient_id") or ""), fold)
        for column in self.KEY_COLUMNS:
            key = _path_key(row.get(column) or "")
            if key:
                self.by_path[key] = entry
        ecg_id = (row.get("ecg_id") or "").strip()
        if ecg_id:
            try:
                self.by_ecg_id[int(float(ecg_id))] = entry
            except ValueError:
                raise UsageError(f"{self.path}:{line}: ecg_id {ecg_id!r} is not a number") from None

    def lookup(self, record_path: Path) -> SplitRow | None:
        parts = record_path.with_suffix("").parts
        for k in range(len(parts), 0, -1):
            found = self.by_path.get("/".join(parts[-k:]))
            if found:
                return found
        ecg_id = ptbxl_ecg_id(record_path)
        return self.by_ecg_id.get(ecg_id) if ecg_id is not None else None


def _path_key(value: str) -> str:
    text = value.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return str(Path(text).with_suffix("")) if text else ""


def hash_split(key: str, fractions: dict[str, float]) -> str:
    """A stable split for ``key``: SHA-256 mapped to [0, 1) and cut by ``fractions``."""
    value = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64
    edge = 0.0
    for split in SPLITS:
        edge += fractions[split]
        if value < edge:
            return split
    return next(s for s in reversed(SPLITS) if fractions[s] > 0)


@dataclass
class SplitCandidate:
    """The split-relevant facts of one included record."""

    record_id: str
    patient_id: str | None
    strat_fold: int | None


def assign_splits(
    candidates: Sequence[SplitCandidate], folds: FoldSplits
) -> tuple[list[str], dict[str, Any]]:
    """Train/val/test per record; a patient never spans two splits.

    By ``strat_fold`` when known, else by a hash of the patient id, else of the record id. A
    patient whose records still land in different splits goes wholly to the most held-out one
    (test over val over train), so nothing of a test patient is trained on.
    """
    fractions = folds.fractions()
    splits: list[str] = []
    methods: Counter[str] = Counter()
    for cand in candidates:
        if cand.strat_fold is not None:
            split = folds.split_of(cand.strat_fold)
            if split is None:
                raise ValueError(f"{cand.record_id}: fold {cand.strat_fold} is in no split")
            methods["strat_fold"] += 1
        elif cand.patient_id is not None:
            split = hash_split("patient:" + cand.patient_id, fractions)
            methods["patient_id_hash"] += 1
        else:
            split = hash_split("record:" + cand.record_id, fractions)
            methods["record_hash"] += 1
        splits.append(split)
    rank = {s: i for i, s in enumerate(SPLITS)}
    strictest: dict[str, str] = {}
    for cand, split in zip(candidates, splits, strict=True):
        if cand.patient_id is not None:
            current = strictest.get(cand.patient_id, split)
            strictest[cand.patient_id] = max(current, split, key=rank.__getitem__)
    moved = 0
    for i, cand in enumerate(candidates):
        if cand.patient_id is not None and strictest[cand.patient_id] != splits[i]:
            splits[i] = strictest[cand.patient_id]
            moved += 1
    info = {
        "by": dict(sorted(methods.items())),
        **folds.to_dict(),
        "hash_fractions": fractions,
        "moved_to_keep_patients_together": moved,
    }
    return splits, info
