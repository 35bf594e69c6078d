#!/usr/bin/env bash
# Headline numbers on one GPU: for each dataset, seeds 1 2 3 train side by side (one process each,
# sharing the GPU), then the 3-seed merge into <results>/<dataset>_seq.json.
#   bash tools/run_headline_gpu.sh [datasets...]          (default: beauty sports)
#   RESULTS=dir bash tools/run_headline_gpu.sh beauty     (where the merged JSON and the logs go)
# Every run is resumable (runs/<dataset>_seq_s<seed>/), so re-running after an interruption picks up
# where it stopped; a seed whose result file exists is not trained again. Extra `key=value`
# overrides for every run can be given in $OVERRIDES, and $TAG names a variant (runs and the merged file
# become <dataset>_seq<TAG>...). TIGER's sliding window at the same size, for comparison:
#   TAG=_window OVERRIDES="objective.kind=window model.decoder=tiger" bash tools/run_headline_gpu.sh beauty
set -euo pipefail
datasets=${*:-beauty sports}
results=${RESULTS:-results}
mkdir -p runs/seed_results "$results/logs"
for ds in $datasets; do
  pids=()
  for s in 1 2 3; do
    [ -f runs/seed_results/${ds}_seq${TAG:-}_s$s.json ] && continue
    accelerate launch --num_processes 1 recipes/train_seq.py --config recipes/configs/${ds}_gpu.yaml seeds=[$s] name=${ds}_seq${TAG:-}_s$s \
      train.progress=false results_dir=runs/seed_results ${OVERRIDES:-} > "$results/logs/${ds}_seq${TAG:-}_s$s.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  grep -h "test:" "$results"/logs/${ds}_seq${TAG:-}_s*.log || true
  python tools/merge_seeds.py runs/seed_results/${ds}_seq${TAG:-}_s{1,2,3}.json -o "$results/${ds}_seq${TAG:-}.json" \
    --command "TAG=${TAG:-} OVERRIDES=\"${OVERRIDES:-}\" bash tools/run_headline_gpu.sh $ds"
done
