package telemetry

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"
)

// RotatingFile opens path for appending audit records (mode 0600) and
// rotates it when it reaches maxMB: the old file is renamed with a
// timestamp and gzipped, and at most 10 old files younger than 90 days are
// kept. The caller closes it.
func RotatingFile(path string, maxMB int) (io.WriteCloser, error) {
	if maxMB <= 0 {
		return nil, errors.New("rotation size must be positive")
	}
	// Fail now, not at the first record, when the file cannot be written.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	if maxMB > 1<<20 {
		return nil, fmt.Errorf("rotation size %d MB is too large", maxMB)
	}
	return &lumberjack.Logger{Filename: path, MaxSize: maxMB, MaxBackups: 10, MaxAge: 90, Compress: true}, nil
}
