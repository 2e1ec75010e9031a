package deps

// A small implementation of npm's semver ranges (node-semver semantics),
// enough to validate allowlist entries, to test a resolved version against a
// requested range and to decide whether two ranges overlap. It is written
// here rather than imported because npm's rules (x-ranges, "-0" upper bounds,
// the prerelease rule) differ in details from general-purpose Go semver
// libraries, and the allowlist must agree with what npm and Deno resolve.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// version is a semver 2.0 version; build metadata is dropped.
type version struct {
	major, minor, patch uint64
	pre                 []string
}

func (v version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch)
	if len(v.pre) > 0 {
		s += "-" + strings.Join(v.pre, ".")
	}
	return s
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func cmpIdent(a, b string) int {
	an, bn := isNumeric(a), isNumeric(b)
	switch {
	case an && bn:
		x, _ := strconv.ParseUint(a, 10, 64)
		y, _ := strconv.ParseUint(b, 10, 64)
		return cmpUint(x, y)
	case an:
		return -1
	case bn:
		return 1
	}
	return strings.Compare(a, b)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (v version) compare(w version) int {
	if c := cmpUint(v.major, w.major); c != 0 {
		return c
	}
	if c := cmpUint(v.minor, w.minor); c != 0 {
		return c
	}
	if c := cmpUint(v.patch, w.patch); c != 0 {
		return c
	}
	switch {
	case len(v.pre) == 0 && len(w.pre) == 0:
		return 0
	case len(v.pre) == 0:
		return 1
	case len(w.pre) == 0:
		return -1
	}
	for i := 0; i < len(v.pre) && i < len(w.pre); i++ {
		if c := cmpIdent(v.pre[i], w.pre[i]); c != 0 {
			return c
		}
	}
	return cmpUint(uint64(len(v.pre)), uint64(len(w.pre)))
}

var errBadVersion = errors.New("bad version")

// parseVersion parses a full version such as "1.2.3" or "v1.2.3-rc.1+b".
func parseVersion(s string) (version, error) {
	p, err := parsePartial(s)
	if err != nil {
		return version{}, err
	}
	if p.n != 3 {
		return version{}, fmt.Errorf("%w %q: want MAJOR.MINOR.PATCH", errBadVersion, s)
	}
	return p.v, nil
}

// partial is a possibly incomplete version: n says how many of
// major.minor.patch were given as numbers (0..3); x-ranges stop counting.
type partial struct {
	v version
	n int
}

func parsePartial(s string) (partial, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "v"), "=")
	if s == "" {
		return partial{}, fmt.Errorf("%w: empty", errBadVersion)
	}
	if i := strings.IndexByte(s, '+'); i >= 0 {
		if !validIdents(s[i+1:], false) {
			return partial{}, fmt.Errorf("%w %q: build metadata", errBadVersion, s)
		}
		s = s[:i]
	}
	var pre []string
	if i := strings.IndexByte(s, '-'); i >= 0 {
		if !validIdents(s[i+1:], true) {
			return partial{}, fmt.Errorf("%w %q: prerelease", errBadVersion, s)
		}
		pre = strings.Split(s[i+1:], ".")
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return partial{}, fmt.Errorf("%w %q: too many parts", errBadVersion, s)
	}
	var p partial
	nums := []*uint64{&p.v.major, &p.v.minor, &p.v.patch}
	wild := false
	for i, part := range parts {
		if part == "x" || part == "X" || part == "*" {
			wild = true
			continue
		}
		if wild {
			return partial{}, fmt.Errorf("%w %q: number after wildcard", errBadVersion, s)
		}
		if !isNumeric(part) || (len(part) > 1 && part[0] == '0') || len(part) > 16 {
			return partial{}, fmt.Errorf("%w %q", errBadVersion, s)
		}
		n, err := strconv.ParseUint(part, 10, 64)
		if err != nil {
			return partial{}, fmt.Errorf("%w %q", errBadVersion, s)
		}
		*nums[i] = n
		p.n = i + 1
	}
	if pre != nil && p.n != 3 {
		return partial{}, fmt.Errorf("%w %q: prerelease on a partial version", errBadVersion, s)
	}
	p.v.pre = pre
	return p, nil
}

func validIdents(s string, noLeadingZero bool) bool {
	if s == "" {
		return false
	}
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		for _, c := range id {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return false
			}
		}
		if noLeadingZero && isNumeric(id) && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

type comparator struct {
	op string // ">", ">=", "<", "<=", "="
	v  version
}

func (c comparator) test(v version) bool {
	r := v.compare(c.v)
	switch c.op {
	case ">":
		return r > 0
	case ">=":
		return r >= 0
	case "<":
		return r < 0
	case "<=":
		return r <= 0
	}
	return r == 0
}

// semverRange is an OR of ANDs of comparators. An empty AND set matches
// every release version.
type semverRange [][]comparator

var errBadRange = errors.New("bad version range")

// parseRange parses an npm range: "", "*", "1.2.3", "^1", "~3.2", "1.x",
// ">=1 <2", "1.2.3 - 2", "^1 || ^2".
func parseRange(s string) (semverRange, error) {
	var r semverRange
	for _, alt := range strings.Split(s, "||") {
		set, err := parseAnd(strings.TrimSpace(alt))
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", errBadRange, s, err)
		}
		r = append(r, set)
	}
	return r, nil
}

func parseAnd(s string) ([]comparator, error) {
	fields := strings.Fields(s)
	if len(fields) == 3 && fields[1] == "-" {
		lo, err := parsePartial(fields[0])
		if err != nil {
			return nil, err
		}
		hi, err := parsePartial(fields[2])
		if err != nil {
			return nil, err
		}
		var set []comparator
		if lo.n > 0 {
			set = append(set, comparator{">=", lo.v})
		}
		return append(set, upperInclusive(hi)...), nil
	}
	// Join operators written apart from their version: ">= 1.2".
	var toks []string
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if strings.Trim(f, "<>=~^") == "" && i+1 < len(fields) {
			f += fields[i+1]
			i++
		}
		toks = append(toks, f)
	}
	var set []comparator
	for _, t := range toks {
		cs, err := parseComparator(t)
		if err != nil {
			return nil, err
		}
		set = append(set, cs...)
	}
	return set, nil
}

// bump returns the first version of the next major (i=0), minor (1) or
// patch (2) as "X.Y.Z-0", the lowest version above the partial.
func bump(v version, i int) version {
	switch i {
	case 0:
		return version{major: v.major + 1, pre: []string{"0"}}
	case 1:
		return version{major: v.major, minor: v.minor + 1, pre: []string{"0"}}
	}
	return version{major: v.major, minor: v.minor, patch: v.patch + 1, pre: []string{"0"}}
}

// upperInclusive is "<= p" for a partial p: "<=1.2" means "<1.3.0-0".
func upperInclusive(p partial) []comparator {
	switch p.n {
	case 0:
		return nil
	case 3:
		return []comparator{{"<=", p.v}}
	}
	return []comparator{{"<", bump(p.v, p.n-1)}}
}

func parseComparator(t string) ([]comparator, error) {
	op := ""
	for _, o := range []string{">=", "<=", "~>", ">", "<", "=", "~", "^"} {
		if strings.HasPrefix(t, o) {
			op, t = o, t[len(o):]
			break
		}
	}
	p, err := parsePartial(t)
	if err != nil {
		return nil, err
	}
	lo := p.v
	switch op {
	case "", "=":
		if p.n == 3 {
			return []comparator{{"=", p.v}}, nil
		}
		if p.n == 0 {
			return nil, nil
		}
		return []comparator{{">=", lo}, {"<", bump(p.v, p.n-1)}}, nil
	case "~", "~>":
		if p.n == 0 {
			return nil, nil
		}
		i := 1
		if p.n == 1 {
			i = 0
		}
		return []comparator{{">=", lo}, {"<", bump(p.v, i)}}, nil
	case "^":
		if p.n == 0 {
			return nil, nil
		}
		i := 0 // index of the first non-zero part, or the last given one
		switch {
		case p.v.major != 0 || p.n == 1:
			i = 0
		case p.v.minor != 0 || p.n == 2:
			i = 1
		default:
			i = 2
		}
		return []comparator{{">=", lo}, {"<", bump(p.v, i)}}, nil
	case ">":
		switch p.n {
		case 0:
			return []comparator{{"<", version{pre: []string{"0"}}}}, nil // matches nothing
		case 3:
			return []comparator{{">", p.v}}, nil
		}
		return []comparator{{">=", bump(p.v, p.n-1)}}, nil
	case ">=":
		if p.n == 0 {
			return nil, nil
		}
		return []comparator{{">=", lo}}, nil
	case "<":
		if p.n == 0 {
			return []comparator{{"<", version{pre: []string{"0"}}}}, nil
		}
		if p.n < 3 {
			lo.pre = []string{"0"}
		}
		return []comparator{{"<", lo}}, nil
	case "<=":
		if p.n == 0 {
			return nil, nil
		}
		return upperInclusive(p), nil
	}
	return nil, fmt.Errorf("unknown operator %q", op)
}

// matches reports whether v satisfies r, with npm's prerelease rule: a
// prerelease version matches only a comparator set that names a prerelease
// of the same major.minor.patch.
func (r semverRange) matches(v version) bool {
	for _, set := range r {
		if setMatches(set, v) {
			return true
		}
	}
	return false
}

func setMatches(set []comparator, v version) bool {
	for _, c := range set {
		if !c.test(v) {
			return false
		}
	}
	if len(v.pre) == 0 {
		return true
	}
	for _, c := range set {
		if len(c.v.pre) > 0 && c.v.major == v.major && c.v.minor == v.minor && c.v.patch == v.patch {
			return true
		}
	}
	return false
}

// intersects reports whether some version satisfies both ranges. The
// intersection of two comparator sets is an interval whose lower end is one
// of the comparator versions, or the version just above one (patch + 1, or
// the release of a prerelease), or 0.0.0; testing those candidates decides it.
func (r semverRange) intersects(o semverRange) bool {
	cands := []version{{}}
	for _, rr := range []semverRange{r, o} {
		for _, set := range rr {
			for _, c := range set {
				v := c.v
				cands = append(cands, v)
				rel := version{major: v.major, minor: v.minor, patch: v.patch}
				cands = append(cands, rel, version{major: v.major, minor: v.minor, patch: v.patch + 1})
			}
		}
	}
	for _, v := range cands {
		if r.matches(v) && o.matches(v) {
			return true
		}
	}
	return false
}
