#!/usr/bin/env bash
# Baselines on one GPU: SASRec-CE with plain IDs and with unified [ID ‖ semantic] items (tokenizer
# trained jointly), seeds 1 2 3, Beauty and Sports; all twelve fits train side by side (one process
# each: SASRec is too small to fill an H100 alone), then merge into <results>/<dataset>_baselines.json
# with popularity, sasrec_id and sasrec_unified.
#   bash tools/run_baselines_gpu.sh [datasets...]          (default: beauty sports)
#   RESULTS=dir MODELS=sasrec_unified OVERRIDES="train.max_minutes=6" bash tools/run_baselines_gpu.sh sports
# Each dataset is merged as soon as its own fits end. A fit whose result file exists is not run again.
set -euo pipefail
datasets=${*:-beauty sports}
results=${RESULTS:-results}
mkdir -p runs/seed_results "$results/logs"
models=${MODELS:-sasrec_id sasrec_unified}
export OMP_NUM_THREADS=1
declare -A pids
for ds in $datasets; do
  pids[$ds]=""
  for model in $models; do
    for s in 1 2 3; do
      name=${ds}_baselines_${model}_s$s
      [ -f runs/seed_results/$name.json ] && continue
      accelerate launch --num_processes 1 recipes/train_baseline.py data.dataset=$ds models=[$model] seeds=[$s] \
        name=$name train.epochs=30 train.progress=false results_dir=runs/seed_results ${OVERRIDES:-} \
        > "$results/logs/$name.log" 2>&1 &
      pids[$ds]+=" $!"
    done
  done
done
for ds in $datasets; do
  for pid in ${pids[$ds]}; do wait "$pid"; done
  python tools/merge_seeds.py runs/seed_results/${ds}_baselines_sasrec_*_s[123].json \
    -o "$results/${ds}_baselines.json" --command "bash tools/run_baselines_gpu.sh $ds"
done
