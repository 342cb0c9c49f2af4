//go:build linux

package jetstream

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncDir flushes the file system holding dir: syncfs(2) writes back every
// dirty page and inode of that file system, which covers all of JetStream's
// files (message blocks, indexes, consumer state) in one call.
func syncDir(dir *os.File) error {
	return unix.Syncfs(int(dir.Fd()))
}
