#!/usr/bin/env bash
# Baselines on one GPU: SASRec-CE with plain IDs and with unified [ID ‖ semantic] items (tokenizer
# trained jointly), seeds 1 2 3, Beauty and Sports; all twelve fits train side by side (one process
# each: SASRec is too small to fill an H100 alone), then merge into <results>/<dataset>_baselines.json
# with popularity, sasrec_id and sasrec_unified.
#   bash tools/run_baselines_gpu.sh [datasets...]          (default: beauty sports)
#   RESULTS=dir MODELS=sasrec_unified OVERRIDES="train.max_minutes=6" bash tools/run_baselines_gpu.sh sports
# On a CPU, JOBS caps the fits running at once (one thread each; JOBS=2 on 2 cores), and TAG keeps a
# protocol variant's fits apart from other runs' (TAG=_cpu: runs/sports_baselines_cpu_*).
# Each dataset is merged as soon as its own fits end. A fit whose result file exists is not run again.
set -euo pipefail
datasets=${*:-beauty sports}
results=${RESULTS:-results}
tag=${TAG:-}
jobs_max=${JOBS:-0}
mkdir -p runs/seed_results "$results/logs"
models=${MODELS:-sasrec_id sasrec_unified}
export OMP_NUM_THREADS=1 GENREC_NUM_THREADS=1
settings="MODELS=\"$models\" OVERRIDES=\"${OVERRIDES:-}\"${JOBS:+ JOBS=$JOBS}${TAG:+ TAG=$TAG}"
declare -A pids
for ds in $datasets; do
  pids[$ds]=""
  for model in $models; do
    for s in 1 2 3; do
      name=${ds}_baselines${tag}_${model}_s$s
      [ -f runs/seed_results/$name.json ] && continue
      if [ "$jobs_max" -gt 0 ]; then
        while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
      fi
      accelerate launch --num_processes 1 recipes/train_baseline.py data.dataset=$ds models=[$model] seeds=[$s] \
        name=$name train.epochs=30 train.progress=false results_dir=runs/seed_results ${OVERRIDES:-} \
        > "$results/logs/$name.log" 2>&1 &
      pids[$ds]+=" $!"
    done
  done
done
for ds in $datasets; do
  for pid in ${pids[$ds]}; do wait "$pid" || true; done  # a failed fit shows as a missing file below
  missing=""
  for model in $models; do
    for s in 1 2 3; do
      f=runs/seed_results/${ds}_baselines${tag}_${model}_s$s.json
      [ -f "$f" ] || missing+=" $f (log: $results/logs/$(basename "$f" .json).log)"
    done
  done
  if [ -n "$missing" ]; then echo "not merging $ds, fits missing:$missing" >&2; exit 1; fi
  python tools/merge_seeds.py runs/seed_results/${ds}_baselines${tag}_sasrec_*_s[123].json \
    -o "$results/${ds}_baselines.json" --command "$settings bash tools/run_baselines_gpu.sh $ds"
done
