#!/usr/bin/env bash
# Builds bin/bt with MPI, for runs over several processes (mpirun, srun):
# Open MPI by default, MPICH with BT_MPI=mpich. The library comes from
# pkg-config (ompi or mpich); scripts/setup.sh installs Open MPI on
# Debian and Ubuntu, `apt-get install mpich libmpich-dev` MPICH.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${BT_MPI:-mpi}
case "$tag" in
  mpi) pc=ompi ;;
  mpich) pc=mpich ;;
  *) echo "build-mpi: BT_MPI=$tag: want mpi (Open MPI) or mpich" >&2; exit 2 ;;
esac
if ! pkg-config --exists "$pc"; then
  echo "build-mpi: pkg-config finds no $pc; install Open MPI (bash scripts/setup.sh) or MPICH (mpich libmpich-dev)" >&2
  exit 1
fi
go build -tags "$tag" -o bin/bt ./cmd/bt
bin/bt devices -check=false | grep '^MPI'
