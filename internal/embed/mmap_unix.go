//go:build unix

package embed

import (
	"os"

	"golang.org/x/sys/unix"
)

// canMap reports whether the platform can map the weights file.
const canMap = true

// mmap maps the first size bytes of f read-only and shared: the pages
// stay the page cache's, shared with every process that maps the file.
func mmap(f *os.File, size int) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
}

func munmap(b []byte) error { return unix.Munmap(b) }
