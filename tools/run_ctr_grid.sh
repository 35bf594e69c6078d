#!/usr/bin/env bash
# The full CTR grid of one dataset in SHARDS processes side by side (on one GPU when there is one: the
# CTR models are far too small to fill an H100 alone), each taking the next fit no other holds (costliest
# first), then one collect run that writes
# <results>/<name>.json (name: ctr_<dataset>) with every cell, and the whole grid's wall time as
# grid_wall_seconds.
#   bash tools/run_ctr_grid.sh [dataset]                        (default: beauty; SHARDS=8)
#   SHARDS=2 bash tools/run_ctr_grid.sh sports                   (a 2-core CPU: one thread per shard)
#   RESULTS=dir OVERRIDES="'grid.backbones=[autoint+]'" bash tools/run_ctr_grid.sh beauty
# Finished fits are kept under runs/ctr_<dataset>/ and reused, so an interrupted grid resumes.
set -euo pipefail
ds=${1:-beauty}
shards=${SHARDS:-8}
results=${RESULTS:-results}
mkdir -p "$results/logs"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# on a CPU the shards split the cores (ignored on a GPU)
export GENREC_NUM_THREADS=${GENREC_NUM_THREADS:-$(( $(nproc) > shards ? $(nproc) / shards : 1 ))}
run() { eval accelerate launch --num_processes 1 recipes/train_ctr.py --config recipes/configs/ctr_$ds.yaml \
  train.progress=false "${OVERRIDES:-}" "$@"; }
start=$(date +%s)
# samples and tokenizer codes are built once, here, before the shards read them
run grid.only_finished=true results_dir=runs/ctr_prepare > "$results/logs/ctr_${ds}_prepare.log" 2>&1
pids=()
for i in $(seq 0 $((shards - 1))); do
  run grid.side_by_side=true results_dir=runs/ctr_shards/$i > "$results/logs/ctr_${ds}_shard$i.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
run grid.only_finished=true results_dir="$results" > "$results/logs/ctr_${ds}_collect.log" 2>&1
out=$(grep -o "wrote .*\.json" "$results/logs/ctr_${ds}_collect.log" | tail -n 1 | cut -d' ' -f2)
command="SHARDS=$shards ${OVERRIDES:+OVERRIDES=\"$OVERRIDES\" }bash tools/run_ctr_grid.sh $ds"
python - "$out" "$(( $(date +%s) - start ))" "$shards" "$command" <<'EOF'
import json, sys
path, seconds, shards, command = sys.argv[1:]
result = json.loads(open(path).read())
result.update(grid_wall_seconds=int(seconds), grid_shards=int(shards), command=command)
open(path, "w").write(json.dumps(result, indent=1))
print(f"{path}: {len(result['rows'])} cells, {len(result.get('missing_cells', []))} missing, grid wall time {seconds} s")
EOF
