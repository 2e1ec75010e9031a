package tsgen

import (
	"bytes"
	"fmt"
	"strings"
)

// archive is a txtar file (golang.org/x/tools/txtar format): a comment, then
// files introduced by "-- name --" lines. A tiny copy, to keep x/tools out of
// go.mod.
type archive struct {
	comment string
	files   []archiveFile
}

type archiveFile struct {
	name string
	data string
}

func parseArchive(data []byte) (*archive, error) {
	a := &archive{}
	var cur *archiveFile
	var buf bytes.Buffer
	flush := func() {
		if cur == nil {
			a.comment = buf.String()
		} else {
			cur.data = buf.String()
			a.files = append(a.files, *cur)
		}
		buf.Reset()
	}
	for _, line := range strings.SplitAfter(string(data), "\n") {
		trimmed := strings.TrimRight(line, "\n")
		if name, ok := strings.CutPrefix(trimmed, "-- "); ok {
			if name, ok := strings.CutSuffix(name, " --"); ok && strings.TrimSpace(name) != "" {
				flush()
				for _, f := range a.files {
					if f.name == name {
						return nil, fmt.Errorf("file %q twice", name)
					}
				}
				cur = &archiveFile{name: strings.TrimSpace(name)}
				continue
			}
		}
		buf.WriteString(line)
	}
	flush()
	return a, nil
}

func (a *archive) get(name string) (string, bool) {
	for _, f := range a.files {
		if f.name == name {
			return f.data, true
		}
	}
	return "", false
}

func (a *archive) set(name, data string) {
	for i, f := range a.files {
		if f.name == name {
			a.files[i].data = data
			return
		}
	}
	a.files = append(a.files, archiveFile{name: name, data: data})
}

func (a *archive) format() []byte {
	var b bytes.Buffer
	b.WriteString(a.comment)
	for _, f := range a.files {
		fmt.Fprintf(&b, "-- %s --\n", f.name)
		b.WriteString(f.data)
		if f.data != "" && !strings.HasSuffix(f.data, "\n") {
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}
