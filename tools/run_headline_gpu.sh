#!/usr/bin/env bash
# Headline numbers on one GPU: Beauty and Sports, seeds 1 2 3, one run after another (side by side
# was slower: the GPU time-slices processes), then the 3-seed merge and the beam-search benchmark.
# Each run is resumable, so the script can be re-run after an interruption and picks up where it was.
#   bash tools/run_headline_gpu.sh [datasets...]
set -euo pipefail
datasets=${*:-beauty sports}
mkdir -p runs/logs runs/seed_results results
for ds in $datasets; do
  for s in 1 2 3; do
    [ -f runs/seed_results/${ds}_seq_s$s.json ] && continue
    accelerate launch recipes/train_seq.py --config recipes/configs/${ds}_gpu.yaml seeds=[$s] name=${ds}_seq_s$s \
      train.progress=false results_dir=runs/seed_results 2>&1 | tee "runs/logs/${ds}_s$s.log" | grep "test\|wrote"
  done
  python tools/merge_seeds.py runs/seed_results/${ds}_seq_s{1,2,3}.json -o results/${ds}_seq.json
done
python tools/bench_beam.py --run runs/beauty_seq_s1/seed_1 --beam 20 --topk 10 --hf-users 1024 --out results/bench_beam.json
