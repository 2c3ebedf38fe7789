#!/usr/bin/env bash
# The GPU path in one short script (<= 5 minutes on one GPU): prints one summary line per check
# and leaves its files in OUT (default runs/gpu-check).
#
#   benchmarks/gpu_check.sh [OUT]
#
# 1. `train --device cuda` with refit fresh and with refit warm (NeuMF, built-in data);
# 2. a 4-trial sweep with resources.gpus 0.25 (four trials share one GPU) and the same 4 trials
#    with gpus 1 (one at a time): wall seconds of each and their ratio, measured in one run;
# 3. `bench --device cuda --scale ml1m` (sweep part left out: it is CPU work).
# On a machine without CUDA it prints "no CUDA here" and exits 0: nothing is checked then.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu-check}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
export WANDB_MODE=disabled PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "no CUDA here: torch sees no GPU on this machine; gpu_check.sh checked nothing (exit 0)"
    exit 0
fi
mkdir -p "$OUT"
"$PY" -c "import torch; print('gpu:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
fail=0
now() { "$PY" -c "import time; print(time.time())"; }
calc() { "$PY" -c "print(format($1, '.2f'))"; }  # no bc on every image

summary() {  # summary.json -> one line: final metric and wall
    "$PY" - "$1" "$2" "$3" <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + "/summary.json"))
final = s.get("final", {})
keys = [k for k in ("test_hr@10", "val_hr@10", "test_auc") if k in final]
shown = ", ".join(f"{k} {final[k]:.4f}" for k in keys)
print(f"PASS train --device cuda --refit {sys.argv[2]}: {shown}; {float(sys.argv[3]):.1f} s")
PY
}

for refit in fresh warm; do
    t0=$(now)
    if timeout 120 "$PY" -m suite.cli train --device cuda --model neumf --refit "$refit" \
        --terms 3 --epochs 5 --epochs-per-term 2 --batch-size 1024 --quiet \
        --out "$OUT/train-$refit" > "$OUT/train-$refit.log" 2>&1; then
        summary "$OUT/train-$refit" "$refit" "$(calc "$(now) - $t0")" \
            || { echo "FAIL train --refit $refit: no summary.json"; fail=1; }
    else
        echo "FAIL train --device cuda --refit $refit (see $OUT/train-$refit.log)"; fail=1
    fi
done

sweep() {  # $1 = GPU share per trial; prints wall seconds
    local share=$1 cfg="$OUT/sweep-gpus-$1.yaml"
    cat > "$cfg" <<YAML
name: gpu-share-$share
data: {source: synthetic-influencer, n_users: 6040, n_items: 3706, n_interactions: 200000}
protocol: holdout
fixed: {model: neumf, terms: 3, epochs: 2, epochs_per_term: 1, batch_size: 1024,
        full_ranking: "off", device: cuda}
space: {threshold: {grid: [0.3, 0.5, 0.7, 0.9]}}
seeds: [0]
search: {algorithm: grid}
objective: {metric: val_hr@10, mode: max}
resources: {cpus: 1, gpus: $share}
wandb: {mode: disabled}
YAML
    local t0; t0=$(now)
    timeout 200 "$PY" -m suite.cli sweep "$cfg" --out "$OUT/sweep-gpus-$share" \
        > "$OUT/sweep-gpus-$share.log" 2>&1 || return 1
    calc "$(now) - $t0"
}
if w4=$(sweep 0.25) && w1=$(sweep 1); then
    echo "PASS sweep 4 trials: gpus 0.25 (4 per GPU) ${w4} s, gpus 1 (1 per GPU) ${w1} s;" \
         "throughput 4-per-GPU / 1-per-GPU = $(calc "$w1 / $w4")x"
else
    echo "FAIL 4-trial GPU sweep (see $OUT/sweep-gpus-*.log)"; fail=1
fi

if timeout 240 "$PY" -m suite.cli bench --device cuda --scale ml1m --skip-sweep \
    --out "$OUT/bench-ml1m" > "$OUT/bench-ml1m.log" 2>&1; then
    "$PY" - "$OUT/bench-ml1m/bench.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t, rates = r["term"], r["loops"]["samples_per_s"]
print(f"PASS bench --device cuda --scale ml1m: trainer b4096 {rates['trainer_b4096']:,.0f} "
      f"samples/s, term train {t['time_train']:.2f} s, (score+resample)/train "
      f"{t['overhead_over_train']:.1%}, eval/train {t['eval_over_train']:.1%}, "
      f"per-million spread {r['per_million']['spread']:.2f}x")
PY
else
    echo "FAIL bench --device cuda --scale ml1m (see $OUT/bench-ml1m.log)"; fail=1
fi
exit $fail
