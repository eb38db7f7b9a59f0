#!/usr/bin/env bash
# go vet for darwin/arm64 (macOS on Apple silicon) of every package that
# does not need cgo. Linking for macOS needs Apple's SDK, which Linux
# machines lack, and every package that reaches wgpu-native (the WebGPU
# binding is cgo) needs it; the rest, with their tests, must build there.
# Prints both lists, so that a package that starts to need cgo shows up.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOOS=darwin GOARCH=arm64 CGO_ENABLED=0
binding=github.com/oliverbestmann/webgpu/wgpu
# Every package with its test variants ("p [p.test]", "p_test [p.test]",
# "p.test"), each with its dependencies.
mapfile -t lines < <(go list -e -test -f '{{.ImportPath}}|{{join .Deps " "}}' ./...)
declare -A cgo=() all=()
for l in "${lines[@]}"; do
  p=${l%%|*} deps=" ${l#*|} "
  p=${p%% *} p=${p%.test} p=${p%_test}
  all[$p]=1
  [[ $deps == *" $binding "* ]] && cgo[$p]=1
done
pure=()
for p in $(printf '%s\n' "${!all[@]}" | sort); do
  [ -z "${cgo[$p]:-}" ] && pure+=("$p")
done
echo "darwin/arm64: vet without cgo: ${pure[*]#github.com/bt-org/bt/}" >&2
echo "darwin/arm64: need cgo (wgpu-native), not vetted: $(printf '%s\n' "${!cgo[@]}" | sort | sed 's|github.com/bt-org/bt/||' | tr '\n' ' ')" >&2
go vet "${pure[@]}"
