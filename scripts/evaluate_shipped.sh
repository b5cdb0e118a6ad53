#!/usr/bin/env bash
# Evaluate every shipped model on PTB-XL fold 9 (100 Hz) and on 500 Hz records, next to its
# linear baseline. Usage: scripts/evaluate_shipped.sh DATASET_DIR SHARED_DATA OUT_DIR
set -euo pipefail
dataset=${1:-data/ptbxl100hp}
shared=${2:-../shared/data}
out=${3:-results}
mkdir -p "$out"
external=("$shared/cpsc2018" "$shared/cpsc2018-extra" "$shared/georgia" "$shared/chapman" "$shared/ningbo")
for pair in "unet-i-ii-v4 linear-i-ii-v4 I,II,V4" "unet-i-ii-v3 linear-i-ii-v3 I,II,V3" \
            "vae-ii-v1-v5 linear-ii-v1-v5 II,V1,V5" "unet-i linear-i I"; do
  set -- $pair
  model=$1 baseline=$2 leads=$3
  [ -f "models/$model.json" ] || { echo "skip $model (not shipped)"; continue; }
  echo "== $model vs $baseline: PTB-XL fold 9, 100 Hz"
  ecgfill evaluate "$dataset" --split val --model "$model" --compare "$baseline" --no-features \
    --json --csv "$out/$model-val.csv" > "$out/$model-val.json"
  echo "== $model vs $baseline: external 500 Hz records (CPSC, Georgia, Chapman, Ningbo)"
  ecgfill evaluate "${external[@]}" --model "$model" --input-leads "$leads" --compare "$baseline" \
    --json --csv "$out/$model-500hz-external.csv" > "$out/$model-500hz-external.json" || true
  echo "== $model vs $baseline: PTB-XL 500 Hz records (32 of 34 are from training folds)"
  ecgfill evaluate "$shared/ptb-xl/records500-cinc2021" --model "$model" --input-leads "$leads" \
    --compare "$baseline" --no-features --json > "$out/$model-500hz-ptbxl.json" || true
done
