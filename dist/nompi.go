//go:build !mpi && !mpich

package dist

import "fmt"

// MPI names the MPI library this binary was built with; "" for none.
const MPI = ""

// Open returns the one-process group. A binary without MPI refuses to
// start as one of several processes: each would train the whole run on
// its own and they would write over each other's output.
func Open() (Comm, error) {
	if n := Launched(); n > 1 {
		return nil, fmt.Errorf("dist: started as one of %d processes, but this bt was built without MPI; build it with scripts/build-mpi.sh (go build -tags mpi)", n)
	}
	return Single{}, nil
}
