//go:build !linux

package jetstream

import (
	"io/fs"
	"os"
	"path/filepath"
)

// syncDir fsyncs every file under dir. Outside Linux there is no syncfs, and
// sync(2) neither waits for the write-back everywhere (the BSDs, macOS) nor has
// one signature in x/sys/unix, so this walks the store instead.
func syncDir(dir *os.File) error {
	return filepath.WalkDir(dir.Name(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed meanwhile (compaction)
			}
			return err
		}
		if d.IsDir() {
			// New files need their directory entries synced too; where a
			// directory cannot be opened or synced (Windows), skip it.
			if f, err := os.Open(path); err == nil {
				_ = f.Sync()
				_ = f.Close()
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		serr := f.Sync()
		cerr := f.Close()
		if serr != nil {
			return serr
		}
		return cerr
	})
}
