//go:build !unix

package journey

import "testing"

type cpuTimer struct{}

func startCPU() cpuTimer             { return cpuTimer{} }
func (cpuTimer) report(b *testing.B) {}
