#!/usr/bin/env bash
# Runs the short-budget sweep of docs/quality.md, one variant at a time,
# and keeps what each finished variant measured (its result.json) in
# docs/sweep-validation/FAMILY/VARIANT/. Every figure is taken on the
# validation split (-val-fraction 0.1: a tenth of the training images,
# held out of pretraining and of the probes' training); the test split is
# left for the chosen recipe's final figures. docs/sweep/ holds the
# earlier sweep, whose figures are on the test split. The sweep takes a day and more of a 2-core
# machine, longer than any one machine here lasts, so the repository is
# where its finished runs live: each start copies them back under the
# runs directory, where `bt ablate` skips them (and -reuse finds the
# shared centre), and an unfinished run still there continues from its
# checkpoint.
#
# Usage: bash scripts/sweep.sh [FAMILY...]   (default: every family, lr
# first: the others run at the rate it chooses, -lr below)
# Environment: BT (the bt binary, default bin/bt), RUNS (default runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bt=${BT:-bin/bt}
runs=${RUNS:-runs}
families=("$@")
[ ${#families[@]} -gt 0 ] || families=(lr warmup optimizer augment-strength width-lambda)
recipe=(-recipe paper -batch 256 -projector 1024-1024-1024 -epochs 10 -warmup 1 -lr 32 -steps 703
  -probe-epochs 30 -eval-train 0 -eval-test 0 -val-fraction 0.1 -val-seed 0 -reuse "$runs")

# copy_new FROM TO copies each FROM/*/*/result.json to the same place
# under TO where that has none. docs/sweep-validation/F/V/result.json is
# runs/sweep-val-F/V/result.json, so FROM and TO are the two prefixes.
copy_new() {
  local src rel
  for src in "$1"*/*/result.json; do
    [ -e "$src" ] || continue
    rel=${src#"$1"}
    [ -e "$2$rel" ] || { mkdir -p "$(dirname "$2$rel")"; cp "$src" "$2$rel"; }
  done
}

copy_new docs/sweep-validation/ "$runs/sweep-val-"

for f in "${families[@]}"; do
  n=$("$bt" ablate -list "$f" | wc -l)
  for ((i = 1; i <= n; i++)); do
    "$bt" ablate "${recipe[@]}" -out "$runs/sweep-val-$f" -only "$i" "$f"
    copy_new "$runs/sweep-val-" docs/sweep-validation/
  done
  # Every variant is finished now: the family's whole table and plot.
  "$bt" ablate "${recipe[@]}" -out "$runs/sweep-val-$f" "$f"
done
