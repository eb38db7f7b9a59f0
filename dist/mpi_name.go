//go:build mpi && !mpich

package dist

// MPI names the MPI library this binary was built with.
const MPI = "Open MPI"
