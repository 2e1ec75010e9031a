package sandbox

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// killTree SIGKILLs the process group led by pid and every descendant of pid,
// including those that left the group with setsid. Everything found is
// stopped first, so nothing can fork while the tree is walked. A process
// that double-forked away (reparented to init) before this call is not
// found: it needs --allow-run, which the administrator grants per program.
func killTree(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGSTOP)
	seen := map[int]bool{}
	for range 8 {
		fresh := false
		for _, p := range descendants(pid) {
			if !seen[p] {
				seen[p] = true
				fresh = true
				_ = syscall.Kill(p, syscall.SIGSTOP)
			}
		}
		if !fresh {
			break
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	for p := range seen {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// descendants lists the live descendants of pid: from the children files
// of its threads (a few reads), or by scanning all of /proc when the kernel
// has none (milliseconds on a busy host).
func descendants(pid int) []int {
	if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(os.Getpid()) + "/children"); err == nil {
		return childrenWalk(pid)
	}
	return scanDescendants(pid)
}

func childrenWalk(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		tasks, err := os.ReadDir("/proc/" + strconv.Itoa(p) + "/task")
		if err != nil {
			continue
		}
		for _, t := range tasks {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/task/" + t.Name() + "/children")
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					out = append(out, c)
					queue = append(queue, c)
				}
			}
		}
	}
	return out
}

func scanDescendants(pid int) []int {
	f, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	children := map[int][]int{}
	for _, name := range names {
		p, err := strconv.Atoi(name)
		if err != nil || p == pid {
			continue
		}
		ppid, _, ok := procStat(p)
		if !ok {
			continue
		}
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// procStat reads the parent pid and process group of pid from
// /proc/<pid>/stat ("pid (comm) state ppid pgrp ..."; comm may hold spaces
// and parentheses).
func procStat(pid int) (ppid, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	st := string(b)
	i := strings.LastIndexByte(st, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(st[i+1:])
	if len(f) < 3 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	pgrp, _ = strconv.Atoi(f[2])
	return ppid, pgrp, true
}
