#!/usr/bin/env bash
# One check of ragtune on a GPU box, for a user to run and paste back:
#   1. the quickstart end to end in bf16 (offline, no key)
#   2. training time against a plain sentence-transformers script (same data, loss, batch)
#   3. peak GPU memory with and without activation checkpointing
#   4. a 2-GPU DDP train stage against 1 GPU, where there are two GPUs
# then a summary (also written to OUT/summary.txt).
#
#   bench/gpu_check.sh [--out DIR] [--cpu-dry-run]
#
# --cpu-dry-run runs every step on CPU at a tiny size (fp32, a few steps, 2 gloo processes
# for step 4): it proves the script works end to end, it measures nothing about GPUs.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${TMPDIR:-/tmp}/ragtune-gpu-check"
DRY=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) OUT="$2"; shift 2 ;;
        --cpu-dry-run) DRY=1; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done

PY="${PYTHON:-python}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export LITELLM_LOCAL_MODEL_COST_MAP=True
export TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: >"$LOG"
SUMMARY="$OUT/summary.txt"
declare -a ROWS=()

say() { printf '\n== %s\n' "$*" | tee -a "$LOG"; }
fail() { echo "gpu_check: $*" | tee -a "$LOG" >&2; exit 1; }
row() { ROWS+=("$1|$2"); }
# Runs a step, its output to the log and the terminal; stops the script (with the step
# named) when it fails.
step() {
    local name="$1"; shift
    echo "\$ $*" >>"$LOG"
    if ! "$@" 2>&1 | tee -a "$LOG"; then
        fail "step '$name' failed; the whole output is in $LOG"
    fi
}
json_of() { grep -E '^\{' "$LOG" | grep "\"$1\"" | tail -n 1; }
field() { "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(d[sys.argv[2]].get(sys.argv[3]))' "$1" "$2" "$3"; }

# -- the machine
say "machine"
"$PY" -c 'import engine, torch, sentence_transformers' 2>/dev/null \
    || fail "cannot import ragtune's engine, torch and sentence-transformers with $PY: activate the environment ragtune is installed in (pip install -e .), or set PYTHON=/path/to/its/python"
if [[ $DRY -eq 1 ]]; then
    DEVICE=cpu; PRECISION=auto; GPUS=0
    echo "CPU dry run: every step at a tiny size on CPU; no GPU number below means anything" | tee -a "$LOG"
else
    command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: this script needs an NVIDIA GPU (or use --cpu-dry-run)"
    nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv | tee -a "$LOG" \
        || fail "nvidia-smi cannot talk to the driver"
    GPUS=$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
    [[ "$GPUS" -ge 1 ]] || fail "torch sees no CUDA GPU (torch $("$PY" -c 'import torch; print(torch.__version__)')): install a CUDA build of torch"
    DEVICE=cuda; PRECISION=bf16
    if [[ "$("$PY" -c 'from engine.core.models import has_native_bf16; print(has_native_bf16("cuda"))')" != True ]]; then
        PRECISION=fp16
        echo "GPU 0 has no native bf16 (before Ampere): using fp16" | tee -a "$LOG"
    fi
fi
"$PY" - <<'EOF' | tee -a "$LOG"
import torch, transformers, sentence_transformers
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), transformers {transformers.__version__}, "
      f"sentence-transformers {sentence_transformers.__version__}, visible GPUs {torch.cuda.device_count()}")
EOF
row "device" "$DEVICE ($GPUS GPU(s)), precision $PRECISION"

# -- 1. quickstart
QS="$OUT/quickstart"
SETS=(--set "run.workspace=\"$QS\"" --set "embedder.precision=\"$PRECISION\""
      --set "reranker.precision=\"$PRECISION\"" --set "embedder.device=\"$DEVICE\""
      --set "reranker.device=\"$DEVICE\"")
if [[ $DRY -eq 1 ]]; then
    SETS+=(--set embedder.epochs=0.05 --set reranker.epochs=0.05)
fi
say "1. quickstart ($PRECISION)"
rm -rf "$QS"
start=$(date +%s)
step quickstart "$PY" -m ragtune.engine run "$REPO/examples/quickstart.toml" "${SETS[@]}"
row "quickstart" "$(( $(date +%s) - start )) s end to end, workspace $QS"
row "quickstart nDCG@10" "$("$PY" - "$QS" <<'EOF'
import json, sys
try:
    m = json.load(open(sys.argv[1] + "/metrics.json"))["embedder"]
    suite = next(k for k in ("benchmark", "held-out") if isinstance(m.get(k), dict))
    dim = max(m["dims"])
    key = f"dim_{dim}_cosine_ndcg@10"
    print(f"{suite} at {dim} dims: base {m[suite]['base'][key]:.4f}, tuned {m[suite]['tuned'][key]:.4f}")
except (OSError, KeyError, StopIteration, ValueError, TypeError) as exc:
    print(f"not found in metrics.json ({type(exc).__name__}); see report.md")
EOF
)"

# -- 2. training time against plain sentence-transformers
say "2. training time: ragtune vs a plain sentence-transformers script"
if [[ $DRY -eq 1 ]]; then SIZE=(--pairs 48 --batch 8 --rounds 1); else SIZE=(--pairs 1024 --batch 64 --rounds 3); fi
step ratio "$PY" "$REPO/bench/gpu_check.py" ratio --workspace "$QS" --device "$DEVICE" \
    --precision "$PRECISION" "${SIZE[@]}"
R=$(json_of ratio)
row "train time / plain ST" "mnrl $(field "$R" ratio mnrl_ratio), distill $(field "$R" ratio distill_ratio) (plain $(field "$R" ratio plain_s) s, $(field "$R" ratio pairs) pairs)"

# -- 3. peak memory with and without checkpointing
say "3. peak GPU memory with and without activation checkpointing"
if [[ $DRY -eq 1 ]]; then MEM=(--batch 8 --seq 64 --steps 2); else MEM=(--batch 128 --seq 256 --steps 4); fi
step memory "$PY" "$REPO/bench/gpu_check.py" memory --workspace "$QS" --device "$DEVICE" \
    --precision "$PRECISION" "${MEM[@]}"
M=$(json_of memory)
if [[ $DRY -eq 1 ]]; then
    row "peak memory" "n/a on CPU (the GPU run reports torch.cuda.max_memory_allocated)"
else
    row "peak memory" "$(field "$M" memory plain_peak_gib) GiB plain, $(field "$M" memory checkpointing_peak_gib) GiB checkpointed (batch $(field "$M" memory batch) × $(field "$M" memory seq) tokens)"
fi
row "step time" "$(field "$M" memory plain_s) s plain, $(field "$M" memory checkpointing_s) s checkpointed"
[[ $DRY -eq 1 ]] || row "proposed batch" "$(field "$M" memory proposed_batch)"

# -- 4. DDP on two GPUs
DDP="$OUT/ddp"
if [[ $DRY -eq 1 || "$GPUS" -ge 2 ]]; then
    say "4. train stage on 1 and 2 processes"
    rm -rf "$DDP"
    DSETS=("${SETS[@]/$QS/$DDP}")
    step ddp-data "$PY" -m ragtune.engine run "$REPO/examples/quickstart.toml" "${DSETS[@]}" \
        --stages ingest,generate,prepare
    for n in 1 2; do
        step "ddp-$n" "$PY" -m ragtune.engine run "$REPO/examples/quickstart.toml" "${DSETS[@]}" \
            --stages train --set "distributed.nproc_per_node=$n"
    done
    step ddp "$PY" "$REPO/bench/gpu_check.py" ddp --workspace "$DDP"
    D=$(json_of ddp)
    row "DDP train stage" "1 proc $(field "$D" ddp one_process_s) s, 2 procs $(field "$D" ddp two_process_s) s (speedup $(field "$D" ddp speedup)), candidates/query $(field "$D" ddp candidates_per_query)"
else
    row "DDP train stage" "skipped: $GPUS GPU visible"
fi

# -- summary
say "summary"
{
    echo "ragtune gpu_check, $(date -u +%Y-%m-%dT%H:%MZ), $(hostname)"
    [[ $DRY -eq 1 ]] && echo "CPU DRY RUN: tiny sizes on CPU; these numbers say nothing about GPUs"
    for r in "${ROWS[@]}"; do
        printf '%-24s %s\n' "${r%%|*}" "${r#*|}"
    done
} | tee "$SUMMARY"
echo "(log: $LOG)"
