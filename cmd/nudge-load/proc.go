package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPU reads the user+system CPU time of process pid (all its threads)
// from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the fields
	// after it start past the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// procRSS reads the resident set size of process pid, in bytes, from the
// VmRSS line of /proc/PID/status.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v) // "12345", "kB"
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(string(f[0]), 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// hostCPU reads the machine-wide busy (not idle, not iowait) CPU time from
// the first line of /proc/stat.
func hostCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line) // "cpu" user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, errors.New("/proc/stat: malformed")
	}
	var busy uint64
	for i, v := range f[1:9] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, errors.New("/proc/stat: malformed")
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

// procSampler follows a target process (and the generator itself) over the
// measured window: CPU at start and end, RSS at start, every second, and end.
type procSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu                 sync.Mutex
	started            bool
	cpu0, self0        time.Duration
	cpu1, self1        time.Duration
	host0, host1       time.Duration
	hostErr            error
	rss0, rssMax, rss1 int64
	err                error
}

// startSampler begins sampling at time at (the end of the warmup). pid 0
// samples only the generator.
func startSampler(pid int, at time.Time) *procSampler {
	s := &procSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop(at)
	return s
}

func (s *procSampler) loop(at time.Time) {
	defer close(s.done)
	select {
	case <-time.After(time.Until(at)):
	case <-s.stop:
		return
	}
	s.mu.Lock()
	s.started = true
	s.self0 = selfCPU()
	s.host0, s.hostErr = hostCPU()
	if s.pid > 0 {
		s.cpu0, s.err = procCPU(s.pid)
		if s.err == nil {
			s.rss0, s.err = procRSS(s.pid)
			s.rssMax = s.rss0
		}
	}
	s.mu.Unlock()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			s.sampleRSS()
		}
	}
}

func (s *procSampler) sampleRSS() int64 {
	if s.pid <= 0 {
		return 0
	}
	rss, err := procRSS(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return 0
	}
	s.rssMax = max(s.rssMax, rss)
	return rss
}

// finish takes the end samples and stops the sampler.
func (s *procSampler) finish() {
	close(s.stop)
	<-s.done
	if !s.started {
		return
	}
	s.self1 = selfCPU()
	if h, err := hostCPU(); s.hostErr == nil {
		s.host1, s.hostErr = h, err
	}
	if s.pid > 0 {
		s.rss1 = s.sampleRSS()
		cpu, err := procCPU(s.pid)
		if err != nil && s.err == nil {
			s.err = err
		}
		s.cpu1 = cpu
	}
}
