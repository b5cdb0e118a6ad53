"""Where installed models are found and how one is loaded by name or path.

:func:`load_model` checks every weight file against its card's SHA-256 and the card embedded in
it, then returns the ONNX or PyTorch backend (an any-subset runner for ``input_leads: any``).
:mod:`ecgfill.console` (rich) is imported only to warn about a broken card: it costs start-up
time.
"""

from __future__ import annotations

import importlib.resources
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from ecgfill.errors import ModelError
from ecgfill.models.anyset import AnySetRunner
from ecgfill.models.base import (
    ARCHES,
    CARD_FORMAT,
    ReconstructionModel,
    TorchModel,
    check_card_fields,
    load_checkpoint,
    read_card,
    verify_sha256,
)
from ecgfill.models.choice import is_any_subset
from ecgfill.models.onnx_backend import OnnxModel, open_session, session_card


def model_dirs() -> list[Path]:
    """Where shipped models are looked for, in order: the installed package's
    ``shipped_models``, the source checkout's ``models/``, then ``$ECGFILL_MODELS``
    (worked out once per value of ``$ECGFILL_MODELS``: every record asks)."""
    return list(_model_dirs(os.environ.get("ECGFILL_MODELS", "")))


@cache
def _model_dirs(env: str) -> tuple[Path, ...]:
    candidates: list[Path] = []
    try:
        shipped = importlib.resources.files("ecgfill") / "shipped_models"
        if shipped.is_dir():
            candidates.append(Path(str(shipped)))
    except (ModuleNotFoundError, NotADirectoryError):
        pass
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():  # a source checkout, not site-packages
        candidates.append(checkout / "models")
    candidates.extend(Path(p) for p in env.split(os.pathsep) if p)
    seen: set[Path] = set()
    dirs = []
    for path in candidates:
        resolved = path.resolve()
        if resolved.is_dir() and resolved not in seen:
            seen.add(resolved)
            dirs.append(resolved)
    return tuple(dirs)


def available_models() -> list[dict[str, Any]]:
    """Cards of every model found in :func:`model_dirs` (first name wins), each with
    ``card_path`` added. Other JSON files are ignored; broken ecgfill cards are skipped with a
    warning."""
    from ecgfill.console import warn

    found: dict[str, dict[str, Any]] = {}
    for directory in model_dirs():
        for path in sorted(directory.glob("*.json")):
            card = _card_in(path)
            if isinstance(card, ModelError):
                warn(str(card))
            elif card is not None:
                found.setdefault(card["name"], {**card, "card_path": str(path)})
    return list(found.values())


# path -> ((mtime_ns, size), the card, None when not a card, or why it is broken)
_CARDS: dict[Path, tuple[tuple[int, int], dict[str, Any] | ModelError | None]] = {}


def _card_in(path: Path) -> dict[str, Any] | ModelError | None:
    """The model card in a JSON file, None when the file is not one, or the ModelError of a
    broken one; parsed once per process while the file is unchanged (a command looks up the
    installed models several times, and the any-subset card alone is about 2 MB)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _CARDS.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        text = json.loads(path.read_text())
    except (OSError, ValueError):
        text = None
    card: dict[str, Any] | ModelError | None = None
    if isinstance(text, dict) and text.get("format") == CARD_FORMAT:
        try:
            card = check_card_fields(text, path)
        except ModelError as exc:
            card = exc
    _CARDS[path] = (key, card)
    return card


def _is_card_file(path: Path) -> bool:
    """Whether a JSON file claims to be an ecgfill model card (it may still be broken)."""
    return _card_in(path) is not None


def installed_cards() -> list[dict[str, Any]]:
    """Cards of the installed models (the diagnostic classifier is not a reconstruction
    model and is left out)."""
    return [c for c in available_models() if c.get("arch") in ARCHES]


WEIGHT_SUFFIX = {"onnx": ".onnx", "torch": ".pt"}


def _resolve(name_or_path: str | Path, backend: str) -> tuple[dict[str, Any] | None, Path, str]:
    """(card or None, weight file, backend) for a registry name or a .json/.onnx/.pt path."""
    path = Path(name_or_path)
    if path.suffix in (".onnx", ".pt"):
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        backend = "onnx" if path.suffix == ".onnx" else "torch"
        return _sibling_card(path), path, backend
    if path.suffix == ".json":
        if not path.is_file():
            raise ModelError(f"{path}: model card not found")
        card = read_card(path)
    else:
        cards = {c["name"]: c for c in available_models()}
        if str(name_or_path) not in cards:
            names = ", ".join(sorted(cards)) or "none installed"
            raise ModelError(f"no model named {name_or_path!r} (available: {names})")
        card = cards[str(name_or_path)]
        path = Path(card["card_path"])
    weights = path.with_name(card["name"] + WEIGHT_SUFFIX[backend])
    if not weights.is_file():
        raise ModelError(f"{weights}: weight file for model {card['name']} not found")
    return card, weights, backend


def _sibling_card(weights: Path) -> dict[str, Any] | None:
    """The card next to a weight file when it is one and lists that file (a training
    checkpoint's ``best.json`` side file is not a card)."""
    sibling = weights.with_suffix(".json")
    if not sibling.is_file() or not _is_card_file(sibling):
        return None
    card = read_card(sibling)
    return card if weights.name in (card.get("sha256") or {}) else None


def _embedded_card(weights: Path, backend: str) -> dict[str, Any]:
    """The card stored inside a weight file given without its card."""
    if backend == "torch":
        return dict(load_checkpoint(weights)["card"])
    return session_card(open_session(weights), None, weights)


def load_model(
    name_or_path: str | Path,
    backend: str = "onnx",
    device: str = "cpu",
    threads: int | None = None,
) -> ReconstructionModel:
    """A ready model by registry name or by path to its ``.json`` card, ``.onnx`` or ``.pt``.
    An any-subset model comes as a runner whose :meth:`bind` gives the model for a lead set
    (``bind`` of a dedicated model checks the leads and returns the model itself).

    A path to weights picks its backend from the suffix. Weight files are checked against the
    card's SHA-256 and the card embedded in them; any mismatch raises ModelError.
    """
    if backend not in WEIGHT_SUFFIX:
        raise ModelError(f"unknown backend {backend!r} (choose onnx or torch)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ModelError(f"unknown device {device!r} (choose cpu or cuda)")
    card, weights, backend = _resolve(name_or_path, backend)
    if card is not None:
        verify_sha256(card, weights)
    if card is None:  # a bare weight file: its embedded card, read once
        card = _embedded_card(weights, backend)
    if is_any_subset(card):
        return AnySetRunner(card, weights, backend,  # type: ignore[return-value]
                            device=device, threads=threads)
    if backend == "onnx":
        return OnnxModel(card, weights, device=device, threads=threads)
    return TorchModel(card, weights, device=device, threads=threads)

