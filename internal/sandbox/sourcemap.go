package sandbox

import (
	"encoding/json"
	"errors"
	"sort"
	"strings"
)

// sourceMap maps positions in the prepared JavaScript back to the user's
// TypeScript (source map v3). Only positions in userFile are kept: the
// import shims are sources too.
type sourceMap struct {
	// lines[genLine] holds segments sorted by generated column (all 0-based).
	lines [][]segment
}

type segment struct {
	genCol, srcLine, srcCol int
}

func parseSourceMap(data []byte) (*sourceMap, error) {
	var raw struct {
		Sources  []string `json:"sources"`
		Mappings string   `json:"mappings"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	sm := &sourceMap{}
	var srcIdx, srcLine, srcCol int
	for _, line := range strings.Split(raw.Mappings, ";") {
		var segs []segment
		genCol := 0
		for _, s := range strings.Split(line, ",") {
			if s == "" {
				continue
			}
			vals, err := decodeVLQ(s)
			if err != nil {
				return nil, err
			}
			genCol += vals[0]
			if len(vals) >= 4 {
				srcIdx += vals[1]
				srcLine += vals[2]
				srcCol += vals[3]
				if srcIdx >= len(raw.Sources) || raw.Sources[srcIdx] == userFile {
					segs = append(segs, segment{genCol: genCol, srcLine: srcLine, srcCol: srcCol})
				}
			}
		}
		sm.lines = append(sm.lines, segs)
	}
	return sm, nil
}

// lookup maps a 1-based generated line and column to a 1-based source
// position.
func (sm *sourceMap) lookup(line, col int) (int, int, bool) {
	if sm == nil || line < 1 || line > len(sm.lines) {
		return 0, 0, false
	}
	segs := sm.lines[line-1]
	c := col - 1
	i := sort.Search(len(segs), func(i int) bool { return segs[i].genCol > c }) - 1
	if i < 0 {
		if len(segs) == 0 {
			return 0, 0, false
		}
		i = 0
	}
	s := segs[i]
	return s.srcLine + 1, s.srcCol + 1 + (c - s.genCol), true
}

const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func decodeVLQ(s string) ([]int, error) {
	var out []int
	shift, value := 0, 0
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(b64, s[i])
		if d < 0 {
			return nil, errors.New("bad VLQ digit")
		}
		value += (d & 31) << shift
		if d&32 != 0 {
			shift += 5
			continue
		}
		v := value >> 1
		if value&1 != 0 {
			v = -v
		}
		out = append(out, v)
		shift, value = 0, 0
	}
	return out, nil
}
