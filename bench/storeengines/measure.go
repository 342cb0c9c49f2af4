package main

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// sinkSum keeps the reads from being optimised away; touching both ends of
// the value makes mmap-based engines fault in the pages.
var sinkSum atomic.Uint64

func sink(v []byte) {
	if len(v) > 0 {
		sinkSum.Add(uint64(v[0]) + uint64(v[len(v)-1]))
	}
}

// latencies collects operation times from one goroutine.
type latencies struct {
	d        []time.Duration
	errs     int
	found    int // gets that found the profile, or entries read by scans
	attempts int
}

func (l *latencies) pct(p float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	i := int(p * float64(len(s)-1))
	return s[i]
}

func (l *latencies) max() time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	return slices.Max(l.d)
}

// procStatus reads memory figures from /proc/self/status, in bytes.
func procStatus() map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 2 && fields[1] == "kB" {
			if v, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
				out[name] = v << 10
			}
		}
	}
	return out
}

// procIO reads /proc/self/io: wchar is what the process passed to write
// calls, write_bytes what it caused to be sent to storage (counted when a
// clean page-cache page is dirtied).
func procIO() map[string]int64 {
	out := map[string]int64{}
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			out[name] = n
		}
	}
	return out
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// diskUsage returns the allocated bytes (st_blocks) and apparent sizes of
// all files under dir.
func diskUsage(dir string) (alloc, apparent int64) {
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		apparent += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			alloc += st.Blocks * 512
		}
		return nil
	})
	return alloc, apparent
}

func mib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 0, 64) + " MiB" }
func gib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + " GiB" }

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

// machineBusy returns the CPU time all processes on the machine have used
// (user, nice, system, irq, softirq, steal) from /proc/stat, so a run can
// tell how much of the machine other processes took.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait, guest
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ = 100
}
