"""The model card of a training run: inputs and outputs, network size and FLOPs against the
reference U-Net, the data it was trained on (databases and their attribution), the optimiser.
Validation and the training summary are filled in by the loop; SHA-256s at export.

:mod:`ecgfill.models.unet` (torch at module level) is imported inside :func:`make_card`.
"""

from __future__ import annotations

import datetime
from typing import Any

from ecgfill import __version__
from ecgfill.leads import LeadPlan
from ecgfill.models.base import (
    CARD_FORMAT,
    CARD_FORMAT_VERSION,
    PTBXL_ATTRIBUTION,
    config_to_dict,
    count_parameters,
    flops_per_second,
)
from ecgfill.models.network_leads import network_input_leads, output_leads_for
from ecgfill.train.data import Dataset
from ecgfill.train.options import TrainOptions

# (substring of a manifest source, database, attribution), first match wins.
KNOWN_DATABASES: tuple[tuple[str, str, str], ...] = (
    ("ptb-xl", "PTB-XL", PTBXL_ATTRIBUTION),
    ("ptbxl", "PTB-XL", PTBXL_ATTRIBUTION),
    ("cpsc2018", "CPSC 2018", "CPSC 2018, CC-BY-4.0, Liu et al. 2018"),
    ("georgia", "Georgia 12-lead", "Georgia 12-lead ECG Challenge database, CC-BY-4.0, "
                                   "Perez Alday et al. 2020"),
    ("chapman", "Chapman-Shaoxing", "Chapman-Shaoxing, CC-BY-4.0, Zheng et al. 2020"),
    ("ningbo", "Ningbo", "Ningbo, CC-BY-4.0, Zheng et al. 2020"),
    ("ptbdb", "PTB Diagnostic", "PTB Diagnostic ECG Database, ODC-By 1.0, Bousseljot et al. "
                                "1995"),
    ("synth", "synthetic", "synthetic records from ecgfill.synth"),
)


def summarise_sources(sources: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """Records per known database (others as "other") and the matching attribution lines."""
    counts: dict[str, int] = {}
    attribution: list[str] = []
    for source, n in sources.items():
        key = source.lower().replace("_", "-")
        match = next((m for m in KNOWN_DATABASES if m[0] in key), None)
        label = match[1] if match else "other"
        counts[label] = counts.get(label, 0) + n
        line = match[2] if match else "other sources (see their licences)"
        if line not in attribution:
            attribution.append(line)
    return dict(sorted(counts.items())), attribution


def make_card(options: TrainOptions, ds: Dataset, net: Any, config: Any, window: int,
              augment: str, flops: float | None = None) -> dict[str, Any]:
    """The model card of a run (validation and training summary are filled in later).
    ``flops`` (per second of signal) is counted on ``net`` unless given."""
    from ecgfill.models.highband import card_bandwidth
    from ecgfill.models.unet import reference_flops_per_second, reference_parameters

    inputs, outputs = options.input_leads, output_leads_for(options.input_leads)
    if flops is None:
        flops = flops_per_second(net, len(inputs), ds.fs, window)
    reference = reference_flops_per_second(ds.fs, len(inputs), len(outputs), window)
    sources, attribution = summarise_sources(ds.sources("train"))
    limitations = [
        f"Inputs must be {', '.join(inputs)} in mV at {ds.fs:g} Hz (resample other rates first);"
        f" predicts {', '.join(outputs)}; the other limb leads follow by lead algebra.",
        f"Trained on {sum(sources.values())} records from {', '.join(sorted(sources))}; "
        "accuracy on other populations, devices, pacing or heavy noise is not validated.",
        "Not a medical device: reconstructed leads are estimates and do not replace a "
        "recorded 12-lead ECG for diagnosis.",
    ]
    if net.latent_channels:
        limitations.append("The spread over latent samples shows the model's variability; it "
                           "is not a calibrated confidence interval.")
    return {
        "format": CARD_FORMAT,
        "format_version": CARD_FORMAT_VERSION,
        "name": options.model_name(),
        "version": datetime.date.today().strftime("%Y.%m.%d"),
        "ecgfill_version": __version__,
        "arch": options.arch,
        "input_leads": list(inputs),
        "network_input_leads": list(network_input_leads(inputs)),
        "lead_plan": LeadPlan.of(inputs).to_dict() if "any" not in inputs else None,
        "output_leads": list(outputs),
        "fs": ds.fs,
        "window": window,
        "window_seconds": window / ds.fs,
        "multiple": net.multiple,
        "latent_channels": net.latent_channels,
        "input_filters": ds.meta.get("filters"),
        "bandwidth": card_bandwidth(ds.fs, ds.meta.get("filters")),
        "config": config_to_dict(config),
        "normalization": {"split": "train", "leads": list(ds.stats["leads"]),
                          "mean": list(ds.stats["mean"]), "std": list(ds.stats["std"])},
        "parameters": count_parameters(net),
        "flops_per_second": round(flops),
        "reference_unet": {"parameters": reference_parameters(len(inputs), len(outputs)),
                           "flops_per_second": round(reference),
                           "flops_ratio": round(flops / reference, 5)},
        "validation": None,
        "training": {
            "command": options.command_line(),
            # the dataset by name and fingerprint: no path of the machine that trained it
            "dataset": {"path": ds.path.name, "fingerprint": ds.fingerprint(),
                        "sources": sources, "counts": ds.meta.get("counts")},
            "augment": augment,
            "seed": options.seed,
            "optimizer": {"name": "AdamW", "lr": options.lr, "weight_decay": options.weight_decay,
                          "schedule": "one-cycle (cosine) over max(step, time) fraction",
                          "batch_size": options.batch_size, "grad_clip": options.grad_clip,
                          "max_epochs": options.epochs, "patience": options.patience,
                          "max_minutes": options.max_minutes},
        },
        "data_attribution": attribution,
        "limitations": limitations,
    }
