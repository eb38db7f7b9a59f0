//go:build !unix

package serve

// pidAlive cannot tell here: a run is running only where its lock can be
// read.
func pidAlive(string) (bool, string) { return false, "" }
