// Package atomicfile writes files that appear whole or not at all.
package atomicfile

import (
	"bufio"
	"os"
	"path/filepath"
)

// Write writes path through a temporary file in the same directory: fill
// writes the content through a buffer, and the file is renamed to path
// (mode 0644) once fill, the flush and the close succeed. On any error the
// temporary file is removed and path is left as it was.
func Write(path string, fill func(w *bufio.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 1<<16)
	if err = fill(w); err != nil {
		return err
	}
	if err = w.Flush(); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
