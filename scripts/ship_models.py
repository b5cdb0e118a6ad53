"""Ship trained runs: copy their exported files into models/, add the reproduction recipe and
extra measurements to each card, and regenerate models/README.md from the cards.

    python scripts/ship_models.py RUN_DIR... [--extra results.json]

``--extra`` maps model name -> dict merged into that card (e.g. accuracy at 500 Hz measured with
``ecgfill evaluate``). Weight files are untouched, so their SHA-256 sums stay valid.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "models"
PREPROCESS = (
    "ecgfill preprocess ../shared/data/ptb-xl/records100 {dataset} "
    "--splits ../shared/data/ptb-xl/ptbxl_folds.csv --workers 2{highpass}"
)
# Published figures the shipped models are compared with (per-record Pearson r, mean).
ANCHORS = {
    ("I", "II", "V4"): "hybrid U-Net (Olaiya & Manivannan 2025): chest r 0.846",
    ("II", "V1", "V5"): "WearECG VAE (Guan et al. 2025), 9 missing leads; reported in normalised units",
    ("I", "II", "V3"): "WearECG comparison setting",
    ("I",): "single-lead wearables: no published anchor used",
}
# Targets set in issue #7 (fold 9, per-record Pearson r, mean): (summary group, threshold).
TARGETS = {
    ("I", "II", "V4"): ("chest_leads", 0.92),
    ("II", "V1", "V5"): ("missing_leads", 0.92),
    ("I", "II", "V3"): ("chest_leads", 0.93),
    ("I",): ("missing_leads", 0.75),
}


def recipe_dataset(card: dict) -> tuple[str, str]:
    """(dataset directory, extra preprocess options) the card's training data corresponds to."""
    from ecgfill.dsp import highpass_in

    highpass = highpass_in(card.get("input_filters"))
    if highpass:
        return "data/ptbxl100hp", f" --highpass {highpass.cutoff_hz:g}"
    return "data/ptbxl100", ""


def portable(command: str, run_dir: Path, dataset: str) -> str:
    """The training command with this machine's paths replaced by the recipe's."""
    parts = command.split()
    parts[2], parts[3] = dataset, f"runs/{run_dir.name}"
    return " ".join(parts)


def ship(run_dir: Path) -> dict:
    side_files = {"best.json", "last.json", "options.json"}
    card_path = next(p for p in run_dir.glob("*.json") if p.name not in side_files)
    card = json.loads(card_path.read_text())
    name = card["name"]
    for filename in card["sha256"]:
        shutil.copy2(run_dir / filename, HERE / filename)
    dataset, options = recipe_dataset(card)
    train = portable(card["training"]["command"], run_dir, dataset)
    evaluate = f"ecgfill evaluate {dataset} --split val --model {name} --no-features --json"
    if card["input_leads"] == "any":  # figures per lead set, written into the card
        evaluate = (f"python scripts/evaluate_lead_sets.py {dataset} --split val --model {name} "
                    f"--out results/lead_sets-{name}.json --card models/{name}.json")
    old = HERE / f"{name}.json"
    if old.is_file():  # keep measurements merged into an earlier shipped card
        kept = json.loads(old.read_text())
        for key in ("lead_sets", "lead_sets_protocol", "evaluation"):
            if key in kept and key not in card:
                card[key] = kept[key]
    from ecgfill.models.highband import card_bandwidth

    card["bandwidth"] = card_bandwidth(float(card["fs"]), card.get("input_filters"))
    card["training"]["command"] = train  # no path of the machine that trained it
    card["training"]["dataset"]["path"] = dataset
    card["recipe"] = {
        "preprocess": PREPROCESS.format(dataset=dataset, highpass=options),
        "train": train,
        "ship": f"cp runs/{run_dir.name}/{name}.{{json,onnx,pt}} models/",
        "evaluate": evaluate,
    }
    card["anchor"] = None if card["input_leads"] == "any" else ANCHORS.get(
        tuple(card["input_leads"]))
    (HERE / f"{name}.json").write_text(json.dumps(card, indent=2, allow_nan=False) + "\n")
    return card


def readme(cards: list[dict]) -> str:
    lines = [
        "# Shipped models",
        "",
        "Trained on PTB-XL v1.0.3 at 100 Hz (Wagner et al., Scientific Data 7, 154, 2020; CC-BY-4.0;",
        "via PhysioNet), folds 1-8 for training, fold 9 for validation and model choice. Fold 10 (the",
        "test fold) was never used. Each `<name>.json` is the model card; `<name>.onnx` runs on CPU with",
        "ONNX Runtime, `<name>.pt` with PyTorch (`--backend torch`). SHA-256 sums in the cards are",
        "verified at load. The training data went through a 0.5 Hz zero-phase high-pass (baseline",
        "wander removal; `input_filters` in the cards), which `reconstruct` applies to the models'",
        "inputs too; references are scored after the same filter. Figures are per-record Pearson r",
        "(mean) on fold 9: over the leads each model predicts (from its card; `ecgfill evaluate`",
        "with the card's `recipe.evaluate` reproduces them), and over the leads issue #7 sets a",
        "target for (chest: the predicted chest leads; all missing: predicted and derived leads).",
        "",
        "| model | inputs | predicts | params | MFLOP/s | val r (predicted leads) | val r (target's "
        "leads) | target | 500 Hz external r | anchor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    dedicated = [c for c in cards if c["input_leads"] != "any"]
    for c in sorted(dedicated, key=lambda c: (c["input_leads"], c["arch"])):
        v = c["validation"]
        evaluation = c.get("evaluation", {})
        ext = (evaluation.get("external_500hz") or {}).get("learned_leads") or {}
        group, threshold = TARGETS.get(tuple(c["input_leads"]), (None, None))
        on_target = ((evaluation.get("ptbxl_fold9_100hz") or {}).get(group) or {}).get("r_mean")
        target = f"{group.replace('_leads', '').replace('missing', 'all missing')} ≥ {threshold}"
        lines.append(
            f"| `{c['name']}` | {','.join(c['input_leads'])} | {','.join(c['output_leads'])} | "
            f"{c['parameters']:,} | {c['flops_per_second'] / 1e6:.1f} | {v['r']:.3f} | "
            f"{on_target if on_target is not None else ''} | {target if group else ''} | "
            f"{ext.get('r_mean', '')} | {c.get('anchor') or ''} |"
        )
    lines += [
        "",
        "500 Hz external r: learned leads on 40 CPSC2018/Georgia/Chapman/Ningbo records at 500 Hz",
        "(never seen in training); the models run at 100 Hz internally, inputs are resampled down and",
        "predictions back up (their own band stops at 47.5 Hz; the high band above it comes from",
        "`highband-any`, below). Details, CIs and the linear baseline on the same records are in",
        "each card's `evaluation`.",
        "",
        *any_subset_section(cards),
        *high_band_section(),
        "Reproduce a model from scratch (dedicated models ≤ 60 min on 2 CPU cores; the any-subset",
        "U-Net up to 3 h, resumable with `--resume`):",
        "",
    ]
    for c in sorted(cards, key=lambda c: c["name"]):
        if "recipe" in c:
            r = c["recipe"]
            lines += [f"- `{c['name']}`:", "  ```bash", f"  {r['preprocess']}", f"  {r['train']}",
                      f"  {r['ship']}", f"  {r['evaluate']}", "  ```"]
    return "\n".join(lines) + "\n"


def any_subset_section(cards: list[dict]) -> list[str]:
    """Markdown: the any-subset models' validation figures per lead set, next to the
    dedicated model of that set."""
    anyset = sorted((c for c in cards if c["input_leads"] == "any" and c.get("lead_sets")),
                    key=lambda c: c["name"])
    if not anyset:
        return []
    dedicated = {}
    for c in cards:
        if c["input_leads"] != "any" and c["arch"] != "linear":
            dedicated[",".join(c["input_leads"])] = (c["name"], c["validation"]["r"])
    keys = list(anyset[0]["lead_sets"])
    lines = [
        "## Any-subset models",
        "",
        "One network for every combination of measured leads (`input_leads: any`): the ridge",
        "regression of the missing leads for the record's lead set, solved at load time from the",
        "lagged 8-lead covariance stored in the card, plus (for `anyset-unet`) a masked U-Net",
        "correction; outputs are projected so every measured lead is reproduced exactly.",
        "`linear-any` is the ridge alone (the any-subset linear baseline). Validation figures:",
        "per-record Pearson r over the learned leads, PTB-XL fold 9 (validation, 2,183",
        "records), references and outputs 0.5 Hz high-passed; 95% bootstrap CI of the mean.",
        "`--model auto` reads these grids.",
        "",
        "| lead set | " + " | ".join(f"`{c['name']}`" for c in anyset) + " | dedicated |",
        "|---|" + "---|" * (len(anyset) + 1),
    ]
    for key in keys:
        cells = []
        for c in anyset:
            e = c["lead_sets"].get(key)
            cells.append(f"{e['r']:.3f} [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]"
                         if e and e.get("ci95") else (f"{e['r']:.3f}" if e else ""))
        name, r = dedicated.get(key, (None, None))
        cells.append(f"`{name}` {r:.3f}" if name else "")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def high_band_section() -> list[str]:
    """Markdown: the high-band models (their own card format) and their validation figures."""
    lines: list[str] = []
    for path in sorted(HERE.glob("*.json")):
        card = json.loads(path.read_text())
        if card.get("format") != "ecgfill-high-band":
            continue
        low, top = card["bandwidth_hz"]
        val = card["validation"]
        lines += [
            f"## High band: `{card['name']}`",
            "",
            f"Adds the band {low:g}-{top:g} Hz of every reconstructed lead at input rates above 100 Hz",
            "(the part the round trip through 100 Hz removes): a linear any-subset model, the",
            f"lagged covariance (±{card['lag']} samples at {card['fs']:g} Hz) of the 8 independent",
            f"leads' high band over {card['dataset']['train_records']} PTB-XL 500 Hz originals of",
            "folds 1-8, a ridge per lead plan, concentrated on the QRS and scaled to the true",
            f"band's energy (at most {card['gain_cap']:g}x). Recipe: `ecgfill preprocess",
            "../shared/data/ptb-xl/records500 data/ptbxl500hp --fs 500 --splits",
            f"../shared/data/ptb-xl/ptbxl500_folds.csv --highpass 0.5`, `{card['recipe']}`.",
            f"The high band alone on fold 9 ({val['records']} records at 500 Hz, validation), r of",
            "the predicted against the true high band of each missing lead (mean; median) and",
            "predicted ÷ true energy (median):",
            "",
            "| lead set | r mean | r median | energy ratio median |",
            "|---|---|---|---|",
        ]
        for key, e in val["lead_sets"].items():
            lines.append(f"| {key} | {e['r_mean']:.3f} | {e['r_median']:.3f} | "
                         f"{e['energy_ratio_median']:.2f} |")
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--extra", type=Path)
    args = parser.parse_args()
    extra = json.loads(args.extra.read_text()) if args.extra else {}
    for run in args.runs:
        card = ship(run)
        print(f"shipped {card['name']}")
    for name, fields in extra.items():  # measurements merged into the shipped cards
        path = HERE / f"{name}.json"
        if path.is_file():
            card = json.loads(path.read_text())
            card.update(fields)
            path.write_text(json.dumps(card, indent=2, allow_nan=False) + "\n")
    cards = [json.loads(p.read_text()) for p in sorted(HERE.glob("*.json"))]
    cards = [c for c in cards if c.get("format") == "ecgfill-model" and "validation" in c]
    (HERE / "README.md").write_text(readme(cards))


if __name__ == "__main__":
    main()
