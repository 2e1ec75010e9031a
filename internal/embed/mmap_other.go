//go:build !unix

package embed

import (
	"errors"
	"os"
)

// canMap reports whether the platform can map the weights file: not
// here, so quantized weights stay on the heap.
const canMap = false

func mmap(*os.File, int) ([]byte, error) { return nil, errors.ErrUnsupported }

func munmap([]byte) error { return nil }
