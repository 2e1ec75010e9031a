//go:build linux

package upstream

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// alive reports whether pid is a live (not zombie) process whose command
// line or parent chain is one of ours: its cmdline holds marker, or it is
// the pid we were told about and started at start.
func alive(pid int, start string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(f) > 19 && f[0] != "Z" && f[0] != "X" && f[19] == start
}

func startTime(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// withMarker lists live processes whose command line contains marker.
func withMarker(marker string) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(marker)) {
			continue
		}
		if alive(pid, startTime(pid)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestNoOrphansAfterSIGKILL starts a hub in a child process, kills that
// child with SIGKILL, and checks that none of its servers survive.
func TestNoOrphansAfterSIGKILL(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("orphan-marker-%d-%d", os.Getpid(), time.Now().UnixNano())
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), modeVar+"=hub", "ORPHAN_MARKER="+marker)
	if _, err := os.Stat(filepath.Join("..", "..", "tools", "node_modules", ".bin", "mcp-server-everything")); err == nil || os.Getenv("CI") != "" {
		cmd.Env = append(cmd.Env, "EVERYTHING_BIN="+npmBin(t, "mcp-server-everything"))
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("hub child: %v", err)
	}
	fields := strings.Fields(line)
	if len(fields) < 3 || fields[0] != "ready" {
		t.Fatalf("hub child said %q", line)
	}
	type proc struct {
		pid   int
		start string
	}
	var servers []proc
	for _, f := range fields[1:] {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			t.Fatalf("bad pid %q in %q", f, line)
		}
		servers = append(servers, proc{pid, startTime(pid)})
		if !alive(pid, servers[len(servers)-1].start) {
			t.Fatalf("server pid %d not running before the kill", pid)
		}
	}
	if n := len(withMarker(marker)); n < 2 {
		t.Fatalf("found %d processes with the marker before the kill, want ≥ 2", n)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	deadline := time.Now().Add(15 * time.Second)
	for {
		var left []int
		for _, p := range servers {
			if alive(p.pid, p.start) {
				left = append(left, p.pid)
			}
		}
		left = append(left, withMarker(marker)...)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("server processes %v outlived the conductor killed with SIGKILL", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
