#!/usr/bin/env bash
# Runs the short-budget sweep of docs/quality.md, one variant at a time,
# and keeps what each finished variant measured (its result.json) in
# docs/sweep/FAMILY/VARIANT/. The sweep takes a day and more of a 2-core
# machine, longer than any one machine here lasts, so the repository is
# where its finished runs live: each start copies them back under the
# runs directory, where `bt ablate` skips them (and -reuse finds the
# shared centre), and an unfinished run still there continues from its
# checkpoint.
#
# Usage: bash scripts/sweep.sh [FAMILY...]   (default: every family but lr,
# which is done and chose the rate the others run at)
# Environment: BT (the bt binary, default bin/bt), RUNS (default runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bt=${BT:-bin/bt}
runs=${RUNS:-runs}
families=("$@")
[ ${#families[@]} -gt 0 ] || families=(warmup optimizer augment-strength width-lambda)
recipe=(-recipe paper -batch 256 -projector 1024-1024-1024 -epochs 10 -warmup 1 -lr 32 -steps 703
  -probe-epochs 30 -eval-train 0 -eval-test 0 -reuse "$runs")

# copy_new FROM TO copies each FROM/*/*/result.json to the same place
# under TO where that has none. docs/sweep/F/V/result.json is
# runs/sweep-F/V/result.json, so FROM and TO are the two prefixes.
copy_new() {
  local src rel
  for src in "$1"*/*/result.json; do
    [ -e "$src" ] || continue
    rel=${src#"$1"}
    [ -e "$2$rel" ] || { mkdir -p "$(dirname "$2$rel")"; cp "$src" "$2$rel"; }
  done
}

copy_new docs/sweep/ "$runs/sweep-"

for f in "${families[@]}"; do
  n=$("$bt" ablate -list "$f" | wc -l)
  for ((i = 1; i <= n; i++)); do
    "$bt" ablate "${recipe[@]}" -out "$runs/sweep-$f" -only "$i" "$f"
    copy_new "$runs/sweep-" docs/sweep/
  done
  # Every variant is finished now: the family's whole table and plot.
  "$bt" ablate "${recipe[@]}" -out "$runs/sweep-$f" "$f"
done
