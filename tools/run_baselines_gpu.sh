#!/usr/bin/env bash
# Baselines on one GPU: SASRec-CE with plain IDs and with unified [ID ‖ semantic] items (tokenizer
# trained jointly), seeds 1 2 3, Beauty and Sports; all twelve fits train side by side (one process
# each: SASRec is too small to fill an H100 alone), then merge into <results>/<dataset>_baselines.json
# with popularity, sasrec_id and sasrec_unified.
#   bash tools/run_baselines_gpu.sh [datasets...]          (default: beauty sports)
#   RESULTS=dir OVERRIDES="train.max_minutes=6" bash tools/run_baselines_gpu.sh beauty
set -euo pipefail
datasets=${*:-beauty sports}
results=${RESULTS:-results}
mkdir -p runs/seed_results "$results/logs"
export OMP_NUM_THREADS=1
pids=()
for ds in $datasets; do
  for model in sasrec_id sasrec_unified; do
    for s in 1 2 3; do
      name=${ds}_baselines_${model}_s$s
      [ -f runs/seed_results/$name.json ] && continue
      accelerate launch --num_processes 1 recipes/train_baseline.py data.dataset=$ds models=[$model] seeds=[$s] \
        name=$name train.epochs=30 train.progress=false results_dir=runs/seed_results ${OVERRIDES:-} \
        > "$results/logs/$name.log" 2>&1 &
      pids+=($!)
    done
  done
done
for pid in "${pids[@]}"; do wait "$pid"; done
for ds in $datasets; do
  python tools/merge_seeds.py runs/seed_results/${ds}_baselines_sasrec_{id,unified}_s{1,2,3}.json \
    -o "$results/${ds}_baselines.json" --command "bash tools/run_baselines_gpu.sh $ds"
done
