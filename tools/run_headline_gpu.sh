#!/usr/bin/env bash
# Headline numbers on one GPU: Beauty and Sports, seeds 1 2 3, all six trainings side by side
# (the TIGER-size model leaves an H100 mostly idle, so parallel processes cost little per run),
# then the 3-seed merge and the beam-search benchmark on Beauty seed 1.
#   bash tools/run_headline_gpu.sh [logdir]
set -euo pipefail
logs=${1:-runs/logs}
mkdir -p "$logs" results
for ds in beauty sports; do
  for s in 1 2 3; do
    python recipes/train_seq.py --config recipes/configs/${ds}_gpu.yaml seeds=[$s] name=${ds}_seq_s$s \
      train.progress=false results_dir=runs/seed_results > "$logs/${ds}_s$s.log" 2>&1 &
  done
done
wait
for ds in beauty sports; do
  python tools/merge_seeds.py runs/seed_results/${ds}_seq_s{1,2,3}.json -o results/${ds}_seq.json
done
python tools/bench_beam.py --run runs/beauty_seq_s1/seed_1 --beam 20 --topk 10 --hf-users 1024 --out results/bench_beam.json
