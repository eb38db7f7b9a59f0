package dist

import "time"

// Meter is a Comm that counts what passes through it: the values its
// collectives carry (an all-gather counts what it gathers) and the time
// they take, waiting for the other ranks included.
type Meter struct {
	Comm
	Bytes int64
	Calls int
	Time  time.Duration
}

func (m *Meter) count(values int, start time.Time) {
	m.Bytes += 4 * int64(values)
	m.Calls++
	m.Time += time.Since(start)
}

func (m *Meter) AllReduce(v []float32) error {
	defer m.count(len(v), time.Now())
	return m.Comm.AllReduce(v)
}

// StartAllReduce counts the payload at the start and, as time, only the
// wait: the time the caller spends blocked on it.
func (m *Meter) StartAllReduce(v []float32) func() error {
	m.Bytes += 4 * int64(len(v))
	m.Calls++
	wait := m.Comm.StartAllReduce(v)
	return func() error {
		defer func(start time.Time) { m.Time += time.Since(start) }(time.Now())
		return wait()
	}
}

func (m *Meter) AllGather(dst, src []float32) error {
	defer m.count(len(dst), time.Now())
	return m.Comm.AllGather(dst, src)
}

func (m *Meter) Broadcast(v []byte, root int) error {
	defer m.count((len(v)+3)/4, time.Now())
	return m.Comm.Broadcast(v, root)
}
