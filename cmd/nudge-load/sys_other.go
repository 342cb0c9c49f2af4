//go:build !linux

package main

import (
	"os"
	"time"
)

func fdatasync(f *os.File) error { return f.Sync() }

func onTmpfs(string) bool { return false }

func selfCPU() time.Duration { return 0 }
