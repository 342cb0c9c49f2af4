//go:build unix

package journey

import (
	"syscall"
	"testing"
	"time"
)

// cpuTimer measures the CPU time the process spends in a benchmark loop,
// which on a shared machine is steadier than the wall time ns/op.
type cpuTimer struct{ start time.Duration }

func startCPU() cpuTimer { return cpuTimer{processCPU()} }

// report adds cpu-ns/op to b's results.
func (c cpuTimer) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
