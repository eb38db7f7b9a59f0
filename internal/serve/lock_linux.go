package serve

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// locked reports whether a process holds the run's lock file: the
// kernel's table of locks (/proc/locks) lists a flock on its inode. It
// only reads: taking the lock to test it, even for a moment, could make a
// run that starts at that moment fail as busy.
func (s *Server) locked(name, holder string) (bool, string) {
	fi, err := s.root.Stat(name)
	if err != nil {
		return false, ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	f, err := os.Open("/proc/locks")
	if !ok || err != nil {
		return pidAlive(holder)
	}
	defer f.Close()
	pid, _ := holderPID(holder)
	dev := fmt.Sprintf("%02x:%02x:%d", major(uint64(st.Dev)), minor(uint64(st.Dev)), st.Ino)
	ino := fmt.Sprintf(":%d", st.Ino)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 4242 00:2f:123456 0 EOF"
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || fs[1] != "FLOCK" || !strings.HasSuffix(fs[5], ino) {
			continue
		}
		// The device numbers of an overlay file system differ between
		// stat and the lock table; then the holder's pid must match.
		if fs[5] == dev || fs[4] == fmt.Sprint(pid) {
			return true, "a process holds its lock (" + holder + ")"
		}
	}
	return false, ""
}

func major(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func minor(dev uint64) uint64 { return dev&0xff | (dev>>12)&0xffffff00 }
