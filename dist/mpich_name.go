//go:build mpich

package dist

// MPI names the MPI library this binary was built with.
const MPI = "MPICH"
