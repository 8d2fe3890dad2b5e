#!/usr/bin/env bash
# The GPU check (issue 34): the one prepared command for a lent GPU machine.
#
#   experiments/gpu_check.sh OUTDIR [IDX_DIR]
#
# Run from the repository root. Uses only the preinstalled packages (no network, no pip):
# the package runs from the tree through PYTHONPATH. IDX_DIR holds the four Fashion-MNIST
# IDX files (.gz or plain); without it the searches run on digits, and the summary says so.
# Each step (experiments/gpu_check.py plan) runs under its own time limit, writes its record
# into OUTDIR and its output into OUTDIR/STEP.log; the summary prints one PASS/FAIL line per
# step with its figure (also OUTDIR/summary.txt) and the exit status is 1 if any step failed.
# GPU_CHECK_STUB=1 replaces every step by a stub (tests/test_gpu_check.py); PYTHON picks the
# interpreter (default python3).
set -u
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 OUTDIR [IDX_DIR]" >&2
    exit 2
fi
out=$1
extra=()
if [ $# -eq 2 ]; then extra=(--idx "$2"); fi
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
check="$repo/experiments/gpu_check.py"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1  # a step killed by its time limit leaves its log so far
mkdir -p "$out" || exit 2
date +%s > "$out/started"
"$py" "$check" plan > "$out/plan.txt" || exit 2
while read -r step limit; do
    echo "gpu_check: $step (at most $limit s)" >&2
    timeout -k 10 "$limit" "$py" "$check" "$step" --out "$out" ${extra[@]+"${extra[@]}"} \
        < /dev/null > "$out/$step.log" 2>&1
    echo $? > "$out/$step.rc"
done < "$out/plan.txt"
"$py" "$check" summary --out "$out"
