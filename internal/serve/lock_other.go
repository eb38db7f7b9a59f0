//go:build !linux

package serve

// locked reports whether the process named by the run's lock file is
// alive on this machine (there is no /proc/locks to read the lock from).
func (s *Server) locked(name, holder string) (bool, string) { return pidAlive(holder) }
