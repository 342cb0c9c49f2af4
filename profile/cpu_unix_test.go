//go:build unix

package profile_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the process has used (user and system): on a
// shared machine a benchmark's CPU time an op is steadier than its wall
// time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
