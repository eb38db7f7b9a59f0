#!/usr/bin/env bash
# The test command: set up, then formatting, vet and every test, on the CPU
# Vulkan driver when no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt would rewrite:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go vet -tags mpi ./...
go test -timeout 40m ./...
# Runs over several processes, under mpirun (the binary built with MPI).
go test -tags mpi -timeout 20m -run 'TestMPI' ./cmd/bt/
