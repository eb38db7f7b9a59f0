#!/usr/bin/env bash
# Soak benchmark (not in CI): a long tiny run on Fashion-MNIST, then the
# device pool's bytes and the process's RSS from its metrics.jsonl every
# 200 steps; both should be flat after the first steps. Takes about
# 10 minutes on lavapipe with the defaults. Usage: scripts/soak.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-2000}
out=$(mktemp -d)/soak
go build -o bin/bt ./cmd/bt
bin/bt pretrain -arch tiny -batch 32 -projector 256-256-256 -steps "$steps" -checkpoint-every 500 -out "$out" >/dev/null 2>&1
python3 - "$out/metrics.jsonl" <<'PY'
import json, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if "loss" in r]
print("| step | device pool MiB | RSS MiB | loss |\n|---|---|---|---|")
for r in rows:
    if r["step"] in (1, 10, 50) or r["step"] % 200 == 0:
        print(f'| {r["step"]} | {r["device_bytes"]/2**20:.1f} | {r["rss_bytes"]/2**20:.1f} | {r["loss"]:.1f} |')
PY
