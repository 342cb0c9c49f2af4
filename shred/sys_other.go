//go:build !linux

package shred

import "os"

func datasync(f *os.File) error { return f.Sync() }

// lockFile is a no-op here: only one process may open a keyring.
func lockFile(f *os.File) error { return nil }
