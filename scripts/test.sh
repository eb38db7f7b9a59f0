#!/usr/bin/env bash
# The test command: set up, then formatting, vet and every test, on the CPU
# Vulkan driver when no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The Vulkan loader's Wayland probe complains on every device the tests open
# when there is no runtime directory (bt itself sets one; its packages leave
# the environment alone).
[ -n "${XDG_RUNTIME_DIR:-}" ] || { XDG_RUNTIME_DIR=$(mktemp -d); export XDG_RUNTIME_DIR; }
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt would rewrite:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go vet -tags mpi ./...
bash scripts/darwin-vet.sh
go test -timeout 40m ./...
# Runs over several processes, under mpirun (the binary built with MPI).
go test -tags mpi -timeout 20m -run 'TestMPI' ./cmd/bt/
# The release builds (scripts/release.sh: linux/amd64, linux/arm64 and
# windows/amd64), each run where this machine can: the Windows one's self-check
# under Wine on lavapipe, choosing its adapter by itself (Wine lists its DX12
# adapter first, which must be skipped), and the arm64 one's under qemu. A
# second linux/amd64 build must be byte-identical to the first.
rel=$(mktemp -d)
trap 'rm -rf "$rel"' EXIT
RELEASE_DIRTY_OK=1 bash scripts/release.sh "$rel/a"
RELEASE_DIRTY_OK=1 TARGETS=linux/amd64 bash scripts/release.sh "$rel/b"
cmp "$rel"/a/bt-*-linux-amd64 "$rel"/b/bt-*-linux-amd64
"$rel"/a/bt-*-linux-amd64 version | tee "$rel/version"
grep -q "^bt          0.0.0-$(git rev-parse --short=12 HEAD)\|^bt          v" "$rel/version"
bash scripts/wine-check.sh "$rel"/a/bt-*-windows-amd64.exe devices -seed 1 | tee "$rel/wine"
grep -q "^all kernels agree with their references" "$rel/wine"
if grep -q "D3D12" "$rel/wine"; then grep -q "^skipped  .*D3D12" "$rel/wine"; fi
# The tests of the packages whose behaviour on Windows rests on its files
# and console (the run lock, Ctrl-C, checkpoint renames), built for Windows
# and run under Wine; docs/platforms.md says what Wine cannot show.
bash scripts/wine-check.sh -tests "$rel/wine-tests"
bash scripts/arm64-check.sh "$rel"/a/bt-*-linux-arm64 devices -check=false | tee "$rel/arm64"
grep -q "^adapter  .*llvmpipe" "$rel/arm64"
