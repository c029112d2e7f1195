#!/usr/bin/env bash
# Everything in ttsbook that only a GPU can check, in two parts (PART=1, then PART=2; each is
# meant to fit one 10-minute device call: the time limits of its steps add up to 570 s and
# 580 s; not yet run on a GPU):
#   1. the GPU unit tests (pytest -m gpu): CUDA predict, a bf16 + torch.compile training run;
#   2. one training step against HF GPT2Model, eager, then CUDA graphs + fused Adam (each
#      with a torch.profiler table of our step: where a launch-bound step spends its time);
#   3. the CoT training step against a direct step at paper size, eager and CUDA graphs;
#   4. the real training loop at paper size (bf16; eager, then compiled): the wall time of a
#      200-step run (start-up and compilation included); then kill -9, --resume, evaluate.
# Run from the repository root with the machine's own python3 (torch, pandas, pytest,
# transformers); nothing is installed. Results and one log go to $OUT (default /tmp/gpu_check).
#
#   PART=1 OUT=$OUT bash benchmarks/gpu_check.sh    # 1 and 2
#   PART=2 OUT=$OUT bash benchmarks/gpu_check.sh    # 3 and 4
#   DEVICE=cpu QUICK=1 bash benchmarks/gpu_check.sh     # a smoke test of this script on a CPU
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
QUICK=${QUICK:-0}
PART=${PART:-all}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TQDM_DISABLE=1
LOG=$OUT/gpu_check.log
RUNS=$(mktemp -d)
if [ "$QUICK" = 1 ]; then   # tiny settings: checks that every command runs, measures nothing
  BENCH="--steps 1 --warmup 1"; TRAIN="--preset cpu --n-points 5 --cot-steps 3 --steps 200 --warmup 2 --ckpt-every 10"
  NS="5"; PRESET=cpu
else
  BENCH="--steps 30 --warmup 5"; TRAIN="--preset paper --n-points 20 --steps 200 --ckpt-every 50"
  NS="20 30 40"; PRESET=paper
fi

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log it, never stop the script
  local name=$1 limit=$2; shift 2
  echo "=== $name: $*" | tee -a "$LOG"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
  echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$LOG"
}

step env 60 $PY -c "import torch, platform; print(platform.python_version(), torch.__version__,
      torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
part() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }
part 1 && [ "$DEVICE" = cuda ] && step gpu-tests 150 $PY -m pytest -q -p no:cacheprovider -m gpu tests
part 1 && step gpt2-eager 120 $PY benchmarks/bench_gpt2.py --device "$DEVICE" $BENCH --profile --out "$OUT"
part 1 && step gpt2-graphs 240 $PY benchmarks/bench_gpt2.py --device "$DEVICE" $BENCH --profile --compile reduce-overhead \
     --fused-adam --out "$OUT"
part 2 && step cot-eager 90 $PY benchmarks/bench_cot_step.py --preset $PRESET --n-points $NS --device "$DEVICE" \
     $BENCH --profile --out "$OUT"
part 2 && step cot-graphs 150 $PY benchmarks/bench_cot_step.py --preset $PRESET --n-points ${NS##* } --device "$DEVICE" \
     $BENCH --profile --compile reduce-overhead --out "$OUT"
# The training loop itself: wall time of a short run, eager then compiled (run dirs differ by hash
# only in 'compile', which is left out of it, so each gets its own root).
part 2 && step train-eager 60 $PY -m ttsbook train $TRAIN --device "$DEVICE" --out "$RUNS/eager"
part 2 && step train-compile 120 $PY -m ttsbook train $TRAIN --device "$DEVICE" --compile --out "$RUNS/compile"
# Interrupt a run (kill -9) once it has written its first checkpoint, resume it, evaluate it.
kill_after_checkpoint() {
  "$@" & local pid=$!
  until compgen -G "$RUNS/resume/*/checkpoint.pt" >/dev/null || ! kill -0 $pid 2>/dev/null; do sleep 0.2; done
  kill -9 $pid 2>/dev/null && echo "killed after $(ls "$RUNS"/resume/*/checkpoint.pt)"
  wait $pid
}
export -f kill_after_checkpoint; export RUNS
part 2 && step train-killed 40 bash -c 'kill_after_checkpoint "$@"' _ $PY -m ttsbook train $TRAIN --seed 1 \
     --device "$DEVICE" --out "$RUNS/resume"
part 2 && step train-resume 60 $PY -m ttsbook train $TRAIN --seed 1 --device "$DEVICE" --out "$RUNS/resume" --resume
part 2 && step evaluate 60 $PY -m ttsbook evaluate "$RUNS"/resume/*/ --m 40 --device "$DEVICE" --out "$OUT/evaluate.csv"
ls -R "$RUNS" >> "$LOG"
rm -rf "$RUNS"
echo "results in $OUT: $(ls "$OUT" | tr '\n' ' ')"
