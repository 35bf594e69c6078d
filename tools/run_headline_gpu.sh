#!/usr/bin/env bash
# Headline numbers on one GPU: for each dataset, seeds 1 2 3 train side by side (one process each,
# sharing the GPU), then the 3-seed merge into <results>/<dataset>_seq.json.
#   bash tools/run_headline_gpu.sh [datasets...]          (default: beauty sports)
#   RESULTS=dir bash tools/run_headline_gpu.sh beauty     (where the merged JSON and the logs go)
# Every run is resumable (runs/<dataset>_seq_s<seed>/), so re-running after an interruption picks up
# where it stopped; a seed whose result file exists is not trained again. Extra `key=value`
# overrides for every run can be given in $OVERRIDES.
set -euo pipefail
datasets=${*:-beauty sports}
results=${RESULTS:-results}
mkdir -p runs/seed_results "$results/logs"
for ds in $datasets; do
  pids=()
  for s in 1 2 3; do
    [ -f runs/seed_results/${ds}_seq_s$s.json ] && continue
    accelerate launch --num_processes 1 recipes/train_seq.py --config recipes/configs/${ds}_gpu.yaml seeds=[$s] name=${ds}_seq_s$s \
      train.progress=false results_dir=runs/seed_results ${OVERRIDES:-} > "$results/logs/${ds}_seq_s$s.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  grep -h "test:" "$results"/logs/${ds}_seq_s*.log || true
  python tools/merge_seeds.py runs/seed_results/${ds}_seq_s{1,2,3}.json -o "$results/${ds}_seq.json" \
    --command "bash tools/run_headline_gpu.sh $ds"
done
