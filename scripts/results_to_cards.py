"""Turn scripts/evaluate_shipped.sh output into ``--extra`` JSON for scripts/ship_models.py.

    python scripts/results_to_cards.py RESULTS_DIR > extra.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SETS = {
    "val": ("ptbxl_fold9_100hz", "PTB-XL fold 9 at 100 Hz (validation)"),
    "500hz-external": (
        "external_500hz", "CPSC2018, Georgia, Chapman, Ningbo at 500 Hz (40 records, never seen)"
    ),
    "500hz-ptbxl": ("ptbxl_500hz", "PTB-XL records500-cinc2021 at 500 Hz (34; 32 from training folds)"),
}


GROUPS = ("learned_leads", "chest_leads", "derived_leads", "missing_leads")


def stats(report: dict, group: str) -> dict | None:
    value = report["summary"].get(group)
    if not value:
        return None
    r = value["pearson_r"]
    return {"r_mean": round(r["mean"], 4), "r_ci95": [round(x, 4) for x in r["ci95"] or []],
            "mae_mv": round(value["mae_mv"]["mean"], 4)}


def entry_for(report: dict, what: str) -> dict:
    return {"data": what, "records": report["summary"]["n_records"],
            **{group: stats(report, group) for group in GROUPS},
            "reference_highpass": report["summary"].get("reference_highpass")}


def main() -> None:
    results = Path(sys.argv[1])
    extra: dict[str, dict] = {}
    for path in sorted(results.glob("*.json")):
        for suffix, (key, what) in SETS.items():
            if path.stem.endswith("-" + suffix):
                model = path.stem[: -len(suffix) - 1]
                report = json.loads(path.read_text())
                entry = entry_for(report, what)
                baseline = report.get("comparison", {}).get("report")
                if baseline:
                    entry["linear_baseline_learned_leads"] = stats(baseline, "learned_leads")
                    entry["linear_baseline_missing_leads"] = stats(baseline, "missing_leads")
                    baseline_name = (baseline["summary"].get("model") or "").split()[0]
                    if baseline_name:  # the baseline's own card gets its figures too
                        extra.setdefault(baseline_name, {}).setdefault("evaluation", {})[key] = \
                            entry_for(baseline, what)
                extra.setdefault(model, {}).setdefault("evaluation", {})[key] = entry
    json.dump(extra, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
