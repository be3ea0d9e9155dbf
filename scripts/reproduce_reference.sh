#!/usr/bin/env bash
# The reference results (docs/reference-results.md) in one command: plan the sweep
# (pipelines/configs/reference_beta1.yaml), prepare the data, train and score every run
# (as packs when `dis-eval sweep` has --pack), stop cleanly before a time budget, and
# collect the finished runs into the package (dis_eval/reference/results/<sweep name>/).
#
#   bash scripts/reproduce_reference.sh --budget-minutes 9    # GPU (default when CUDA is present)
#   bash scripts/reproduce_reference.sh                         # the same, run again: continues
#   bash scripts/reproduce_reference.sh --cpu --out /tmp/ref    # CPU smoke version on the test fixture
#
# Options:
#   --cpu                 the CPU smoke version: the real-image test fixture, a few steps, small
#                         metric samples; collects into OUT/collected, never into the package
#   --budget-minutes M    stop the sweep so that the whole command ends within M minutes; the
#                         runs keep their last checkpoints (every 5,000 steps) and the next
#                         invocation continues from them (default: no budget)
#   --budget-seconds S    the same in seconds
#   --steps N             train N steps instead of the sweep file's: a shorter check, its own
#                         sweep (<name>_<N>steps), collected into OUT/collected, not the package
#   --seeds N             seeds 0..N-1 per model (default: the sweep file's list)
#   --out DIR             state folder: sweep file, runs with checkpoints (default ./reference-runs;
#                         outside the package, git-ignored; about 8 MB of checkpoint a run)
#   --jobs N              sweep jobs (or packs) at a time (default 1)
#   --pack N|auto         pack size, when `dis-eval sweep` supports packs (default auto)
#   --dest DIR            root of the collected layout (default: the package's; --cpu: OUT/collected);
#                         on a machine whose results are copied back from a folder, put both
#                         --out and --dest there, then copy DEST/<sweep name> into the package
#   --no-collect          train and score only
#
# How it resumes: the state is the sweep folder OUT/sweep. Re-running `dis-eval sweep` on it
# skips finished runs (trained and scored), continues interrupted ones from checkpoint.pt,
# and scores a trained run whose scoring was cut off; the budget stop is a SIGINT, after which
# every job releases its lock and keeps its last checkpoint. Carry OUT to the next machine
# (checkpoints only matter; data is re-prepared) and run the same command.
#
# Exit status: 0 when every run is done (and collected), 3 when the budget stopped the sweep
# with runs left (run the command again), 1 when a run failed, 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=auto
BUDGET_MIN=""
BUDGET_S=""
STEPS=""
SEEDS=""
OUT=reference-runs
JOBS=1
PACK=auto
DEST=""
COLLECT=1
RESERVE_S=60  # kept back from the budget for the stop, the status and the collection

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "error: $*" >&2; exit 2; }
need_value() { [ "$#" -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }

while [ "$#" -gt 0 ]; do
  case "$1" in
    --cpu) MODE=cpu ;;
    --gpu) MODE=gpu ;;
    --budget-minutes) need_value "$@"; BUDGET_MIN=$2; shift ;;
    --budget-seconds) need_value "$@"; BUDGET_S=$2; shift ;;
    --steps) need_value "$@"; STEPS=$2; shift ;;
    --seeds) need_value "$@"; SEEDS=$2; shift ;;
    --out) need_value "$@"; OUT=$2; shift ;;
    --jobs) need_value "$@"; JOBS=$2; shift ;;
    --pack) need_value "$@"; PACK=$2; shift ;;
    --dest) need_value "$@"; DEST=$2; shift ;;
    --no-collect) COLLECT=0 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
is_int() { [[ "$1" =~ ^[0-9]+$ ]]; }
[ -z "$BUDGET_MIN" ] || { is_int "$BUDGET_MIN" && [ "$BUDGET_MIN" -ge 1 ]; } || die "--budget-minutes must be a whole number >= 1"
[ -z "$BUDGET_S" ] || { is_int "$BUDGET_S" && [ "$BUDGET_S" -ge 1 ]; } || die "--budget-seconds must be a whole number >= 1"
[ -z "$BUDGET_MIN" ] || [ -z "$BUDGET_S" ] || die "give --budget-minutes or --budget-seconds, not both"
[ -z "$BUDGET_MIN" ] || BUDGET_S=$((BUDGET_MIN * 60))
[ -z "$STEPS" ] || { is_int "$STEPS" && [ "$STEPS" -ge 1 ]; } || die "--steps must be a whole number >= 1"
[ -z "$SEEDS" ] || { is_int "$SEEDS" && [ "$SEEDS" -ge 1 ]; } || die "--seeds must be a whole number >= 1"
{ is_int "$JOBS" && [ "$JOBS" -ge 1 ]; } || die "--jobs must be a whole number >= 1"
[ "$PACK" = auto ] || { is_int "$PACK" && [ "$PACK" -ge 1 ]; } || die "--pack must be auto or a whole number >= 1"

PY=${PYTHON:-python}
DIS_EVAL=("$PY" -m pipelines.cli)
REF=("$PY" -m dis_eval.reference)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ "$MODE" = auto ]; then
  if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    MODE=gpu
  else
    die "no CUDA device here: the reference runs need a GPU (use --cpu for the smoke version)"
  fi
fi
# The metric baselines' cache lives in OUT too (small JSON files): carried with the state, it
# spares the next session recomputing the random and oracle baselines on the full grid.
if [ -z "${DIS_EVAL_CACHE:-}" ]; then export DIS_EVAL_CACHE="$OUT/cache"; fi
start=$SECONDS
say() { printf '[reproduce_reference %4ds] %s\n' "$((SECONDS - start))" "$*"; }

mkdir -p "$OUT"
plan=("$OUT/sweep.yaml")
[ -z "$SEEDS" ] || plan+=(--seeds "$SEEDS")
[ -z "$STEPS" ] || plan+=(--steps "$STEPS")
[ "$MODE" = cpu ] && plan+=(--cpu)
"${REF[@]}" plan "${plan[@]}"
NAME=$("$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' "$OUT/sweep.yaml")
say "mode $MODE, sweep $NAME, state in $OUT/sweep"

if [ "$MODE" = gpu ]; then
  if [ -f "${DIS_EVAL_DATA:-data}/dsprites_full.npz" ]; then
    say "data: ${DIS_EVAL_DATA:-data}/dsprites_full.npz is prepared"
  else
    say "data: preparing dSprites (the official file if it is in ${DIS_EVAL_DATA:-data}, else rendered)"
    "${DIS_EVAL[@]}" prepare dsprites --workers "$(nproc)"
  fi
fi

sweep=("${DIS_EVAL[@]}" sweep "$OUT/sweep.yaml" --out "$OUT/sweep" --jobs "$JOBS")
sweep_help=$("${DIS_EVAL[@]}" sweep --help)
if grep -q -- '--pack' <<<"$sweep_help"; then
  sweep+=(--pack "$PACK")
  say "packs: --pack $PACK"
else
  say "packs: not available in this version of dis-eval sweep (one process a run)"
fi

sweep_rc=0
if [ -n "$BUDGET_S" ]; then
  left=$((BUDGET_S - (SECONDS - start) - RESERVE_S))
  if [ "$left" -le 0 ]; then
    say "budget: no time left for training (${BUDGET_S} s, ${RESERVE_S} s kept for the collection)"
    sweep_rc=124
  else
    say "budget: the sweep may run ${left} s, then stops (SIGINT; runs keep their checkpoints)"
    timeout --signal=INT --kill-after=45 "$left" "${sweep[@]}" || sweep_rc=$?
  fi
else
  "${sweep[@]}" || sweep_rc=$?
fi
case "$sweep_rc" in
  0) say "sweep: every run done" ;;
  124|130|137) say "sweep: stopped by the budget; run this command again to continue" ;;
  *) say "sweep: exit status $sweep_rc (a failed run is listed above and in its failed.json)" ;;
esac
if [ ! -d "$OUT/sweep" ]; then
  say "no runs in $OUT/sweep yet: nothing to collect"
  COLLECT=0
else
  "${DIS_EVAL[@]}" sweep --status "$OUT/sweep" || true
fi

if [ "$COLLECT" = 1 ]; then
  # Only full-length GPU runs go into the package by default.
  if [ -z "$DEST" ] && { [ "$MODE" = cpu ] || [ -n "$STEPS" ]; }; then DEST="$OUT/collected"; fi
  collect=("${REF[@]}" collect "$OUT/sweep" --set "$NAME")
  [ -z "$DEST" ] || collect+=(--dest "$DEST")
  "${collect[@]}"
  show=("${REF[@]}" show)
  [ -z "$DEST" ] || show+=(--root "$DEST")
  "${show[@]}"
fi

case "$sweep_rc" in
  0) exit 0 ;;
  124|130|137) exit 3 ;;
  *) exit 1 ;;
esac
