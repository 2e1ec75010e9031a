package deps

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      []string
		want    []Spec
		wantErr string // substring; "" means success
	}{
		{in: nil, want: nil},
		{in: []string{"npm:zod@^3"}, want: []Spec{{NPM, "zod", "^3"}}},
		{in: []string{"npm:zod"}, want: []Spec{{NPM, "zod", ""}}},
		{in: []string{" npm:axios@~1.7 ", "npm:zod@^3"}, want: []Spec{{NPM, "axios", "~1.7"}, {NPM, "zod", "^3"}}},
		{in: []string{"jsr:@std/path"}, want: []Spec{{JSR, "@std/path", ""}}},
		{in: []string{"jsr:@std/path@^1.0.8"}, want: []Spec{{JSR, "@std/path", "^1.0.8"}}},
		{in: []string{"npm:@types/node@>=20  <22"}, want: []Spec{{NPM, "@types/node", ">=20 <22"}}},
		{in: []string{"npm:lodash@4.17.21"}, want: []Spec{{NPM, "lodash", "4.17.21"}}},
		{in: []string{"npm:lodash@4.x"}, want: []Spec{{NPM, "lodash", "4.x"}}},
		{in: []string{"npm:lodash@*"}, want: []Spec{{NPM, "lodash", "*"}}},
		{in: []string{"npm:x@^1 || ^2"}, want: []Spec{{NPM, "x", "^1 || ^2"}}},
		{in: []string{"npm:x@1.2.3 - 2.3"}, want: []Spec{{NPM, "x", "1.2.3 - 2.3"}}},
		{in: []string{"npm:lodash.merge@^4"}, want: []Spec{{NPM, "lodash.merge", "^4"}}},
		{in: []string{"npm:JSONStream@1"}, want: []Spec{{NPM, "JSONStream", "1"}}},

		{in: []string{""}, wantErr: `"": empty entry`},
		{in: []string{"zod"}, wantErr: `"zod": want "npm:NAME[@RANGE]"`},
		{in: []string{"pip:zod"}, wantErr: `"pip:zod"`},
		{in: []string{"npm:"}, wantErr: "missing package name"},
		{in: []string{"npm:zod@"}, wantErr: "empty version range"},
		{in: []string{"npm:zod@^three"}, wantErr: "bad version"},
		{in: []string{"npm:zod@>=1 <2 <<3"}, wantErr: "bad version"},
		{in: []string{"npm:zod@1.2.3.4"}, wantErr: "too many parts"},
		{in: []string{"npm:zod@01.2"}, wantErr: "bad version"},
		{in: []string{"npm:zod@^3/v4"}, wantErr: "subpaths are not allowed"},
		{in: []string{"npm:zod/v4"}, wantErr: "bad package name"},
		{in: []string{"npm:.hidden"}, wantErr: "starts with"},
		{in: []string{"npm:_under"}, wantErr: "starts with"},
		{in: []string{"npm:a b"}, wantErr: "bad package name"},
		{in: []string{"npm:@scope"}, wantErr: "bad scoped name"},
		{in: []string{"npm:@/x"}, wantErr: "bad scoped name"},
		{in: []string{"npm:../evil"}, wantErr: "starts with"},
		{in: []string{"jsr:path"}, wantErr: "must be scoped"},
		{in: []string{"jsr:@std/Path"}, wantErr: "bad package name"},
		{in: []string{"npm:zod@^3", "npm:zod@^4"}, wantErr: `"npm:zod@^4": zod is already allowed by "npm:zod@^3"`},
		{in: []string{"npm:@std/path", "jsr:@std/path"}, wantErr: "already allowed"},
		{in: []string{"npm:zod", "npm:zod"}, wantErr: "already allowed"},
		{in: []string{"npm:" + strings.Repeat("a", 215)}, wantErr: "longer than 214"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, ","), func(t *testing.T) {
			a, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) error = %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, a.Specs()); diff != "" {
				t.Errorf("Parse(%q) specs (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestHash(t *testing.T) {
	must := func(e ...string) *Allowlist {
		a, err := Parse(e)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a, b := must("npm:zod@^3", "npm:ms@^2"), must(" npm:ms@^2", "npm:zod@^3 ")
	if a.Hash() != b.Hash() {
		t.Errorf("Hash differs for the same list in another order: %s vs %s", a.Hash(), b.Hash())
	}
	for _, other := range []*Allowlist{must("npm:zod@^3"), must("npm:zod@^3", "npm:ms@^1"), must(), nil} {
		if other.Hash() == a.Hash() {
			t.Errorf("Hash(%s) = Hash(%s)", other, a)
		}
	}
	if (*Allowlist)(nil).Hash() != must().Hash() {
		t.Error("nil and empty allowlists hash differently")
	}
	if h := a.Hash(); len(h) != 32 {
		t.Errorf("Hash() = %q, want 32 hex digits", h)
	}
}

func TestRange(t *testing.T) {
	tests := []struct {
		rng   string
		yes   []string
		no    []string
		bad   bool
		inter map[string]bool // other range → intersects
	}{
		{rng: "", yes: []string{"0.0.0", "3.25.76", "99.0.0"}, no: []string{"1.0.0-rc.1"}},
		{rng: "^3", yes: []string{"3.0.0", "3.25.76"}, no: []string{"2.9.9", "4.0.0", "4.0.0-0", "3.1.0-beta"},
			inter: map[string]bool{"^2": false, "3.22.x": true, ">=3.25.77": true, "<3": false, "^3.25 || ^4": true, ">=4": false, "*": true, "3.0.0 - 3.1": true}},
		{rng: "^0.2.3", yes: []string{"0.2.3", "0.2.9"}, no: []string{"0.3.0", "0.2.2"}},
		{rng: "^0.0.3", yes: []string{"0.0.3"}, no: []string{"0.0.4"}},
		{rng: "^0.x", yes: []string{"0.0.1", "0.9.0"}, no: []string{"1.0.0"}},
		{rng: "~3.2", yes: []string{"3.2.0", "3.2.9"}, no: []string{"3.3.0", "3.1.9"}},
		{rng: "~3", yes: []string{"3.9.0"}, no: []string{"4.0.0"}},
		{rng: "~1.2.3", yes: []string{"1.2.3", "1.2.10"}, no: []string{"1.3.0"}},
		{rng: ">=1 <2", yes: []string{"1.0.0", "1.99.0"}, no: []string{"2.0.0", "0.9.0", "2.0.0-alpha"},
			inter: map[string]bool{"^1.5": true, "^2": false, ">1.99.99": true, ">=2": false, "<=1.0": true}},
		{rng: "> 1.2", yes: []string{"1.3.0"}, no: []string{"1.2.9"}},
		{rng: "<=1.2", yes: []string{"1.2.9"}, no: []string{"1.3.0"}},
		{rng: "1.2.3", yes: []string{"1.2.3", "v1.2.3+build"}, no: []string{"1.2.4"}, inter: map[string]bool{"1.2.3": true, "1.2.4": false, "~1.2": true}},
		{rng: "=1.2.3", yes: []string{"1.2.3"}, no: []string{"1.2.4"}},
		{rng: "1.x", yes: []string{"1.0.0", "1.5.0"}, no: []string{"2.0.0"}},
		{rng: "1.2.*", yes: []string{"1.2.7"}, no: []string{"1.3.0"}},
		{rng: "^1 || ^3", yes: []string{"1.1.0", "3.0.0"}, no: []string{"2.0.0"}, inter: map[string]bool{"^2": false, "^3.5": true}},
		{rng: "1.2.3 - 2.3", yes: []string{"1.2.3", "2.3.9"}, no: []string{"2.4.0", "1.2.2"}},
		{rng: "1.0.0-rc.1", yes: []string{"1.0.0-rc.1"}, no: []string{"1.0.0"}},
		{rng: ">=1.0.0-rc.1 <2", yes: []string{"1.0.0-rc.2", "1.5.0"}, no: []string{"1.1.0-rc.1"}},
		{rng: "^three", bad: true},
		{rng: "1.x.3", bad: true},
		{rng: "~>", bad: true},
		{rng: ">=", bad: true},
	}
	for _, tt := range tests {
		r, err := parseRange(tt.rng)
		if tt.bad {
			if err == nil {
				t.Errorf("parseRange(%q) = %v, want error", tt.rng, r)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseRange(%q) error = %v", tt.rng, err)
			continue
		}
		for _, v := range tt.yes {
			if pv, err := parseVersion(v); err != nil || !r.matches(pv) {
				t.Errorf("%q matches %q = false (err %v), want true", tt.rng, v, err)
			}
		}
		for _, v := range tt.no {
			if pv, err := parseVersion(v); err != nil || r.matches(pv) {
				t.Errorf("%q matches %q = true (err %v), want false", tt.rng, v, err)
			}
		}
		for o, want := range tt.inter {
			or, err := parseRange(o)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.intersects(or); got != want {
				t.Errorf("%q intersects %q = %v, want %v", tt.rng, o, got, want)
			}
			if got := or.intersects(r); got != want {
				t.Errorf("%q intersects %q = %v, want %v", o, tt.rng, got, want)
			}
		}
	}
}

func TestCheck(t *testing.T) {
	a, err := Parse([]string{"npm:zod@^3", "jsr:@std/path@^1", "npm:@types/node", "npm:ms@>=2.1 <3"})
	if err != nil {
		t.Fatal(err)
	}
	const (
		ok       = ""
		local    = "local"
		notAllow = "not allowed"
	)
	tests := []struct {
		spec string
		want string // ok, local, or a substring of the NotAllowedError
	}{
		{"npm:zod@^3", ok},
		{"npm:zod", ok},
		{"npm:/zod@3.25.76", ok},
		{"npm:zod@3.22.4", ok},
		{"npm:zod@~3.22", ok},
		{"npm:zod@^3/v4", ok},
		{"npm:zod/v4", ok},
		{"zod", ok},
		{"zod/v4", ok},
		{"zod/v4/core", ok},
		{"jsr:@std/path", ok},
		{"jsr:@std/path@^1.0.8/posix", ok},
		{"jsr:/@std/path@1", ok},
		{"@std/path", ok},
		{"@std/path/posix", ok},
		{"npm:@types/node@22", ok},
		{"npm:ms@^2", ok},
		{"node:fs", ok},
		{"node:fs/promises", ok},

		{"./mcp/salesforce", local},
		{"../x.js", local},
		{"/etc/passwd", local},
		{"file:///etc/passwd", local},
		{"https://deno.land/x/a.ts", local},
		{"HTTP://x", local},
		{"data:text/javascript,1", local},
		{"blob:null/123", local},

		{"npm:lodash", "package not in the allowlist"},
		{"lodash", "package not in the allowlist"},
		{"npm:zod@^2", "outside the allowed range ^3"},
		{"npm:zod@4.0.0", "outside the allowed range"},
		{"npm:ms@^1", "outside the allowed range"},
		{"jsr:zod", "must be scoped"},
		{"jsr:@std/path@^0.2", "outside"},
		{"npm:@std/path", "allowed from jsr:, not npm:"},
		{"jsr:@types/node", "allowed from npm:, not jsr:"},
		{"zod@3", "bare import cannot carry a version"},
		{"npm:zod@", "empty version"},
		{"npm:zod@^x3", "bad version"},
		{"node:", "empty node:"},
		{"ext:core/ops", notAllow},
		{"fs", "package not in the allowlist"},
		{"", notAllow},
		{"npm:", notAllow},
		{"@std", notAllow},
	}
	for _, tt := range tests {
		err := a.Check(tt.spec)
		switch tt.want {
		case ok:
			if err != nil {
				t.Errorf("Check(%q) = %v, want nil", tt.spec, err)
			}
		case local:
			if !errors.Is(err, ErrNotPackage) {
				t.Errorf("Check(%q) = %v, want ErrNotPackage", tt.spec, err)
			}
		default:
			var na *NotAllowedError
			if !errors.As(err, &na) {
				t.Errorf("Check(%q) = %v, want *NotAllowedError", tt.spec, err)
				continue
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, "import "+quote(tt.spec)) ||
				!strings.Contains(msg, "allowed packages: jsr:@std/path@^1, npm:@types/node, npm:ms@>=2.1 <3, npm:zod@^3") {
				t.Errorf("Check(%q) = %q, want the specifier, %q and the allowlist", tt.spec, msg, tt.want)
			}
		}
	}
}

func quote(s string) string { return `"` + s + `"` }

func TestCheckEmptyAllowlist(t *testing.T) {
	var a *Allowlist
	err := a.Check("npm:zod")
	if err == nil || !strings.Contains(err.Error(), "allowed packages: none") {
		t.Errorf("nil Check(npm:zod) = %v, want not allowed with no packages", err)
	}
	if err := a.Check("node:path"); err != nil {
		t.Errorf("nil Check(node:path) = %v", err)
	}
}

func TestCacheCheckResolved(t *testing.T) {
	a, err := Parse([]string{"npm:zod@^3"})
	if err != nil {
		t.Fatal(err)
	}
	c := &Cache{Allowlist: a, Resolved: map[string]string{"npm:zod@^3": "3.25.76"}}
	for spec, want := range map[string]bool{
		"npm:zod@^3":      true,
		"npm:zod@^3.25":   true,
		"npm:zod@3.25.76": true,
		"npm:zod@~3.22":   false, // overlaps ^3 but 3.25.76 is what is installed
		"npm:zod@3.22.4":  false,
		"npm:zod@^2":      false,
		"npm:zod":         true,
		"zod/v4":          true,
	} {
		err := c.Check(spec)
		if (err == nil) != want {
			t.Errorf("Cache.Check(%q) = %v, want ok=%v", spec, err, want)
		}
	}
	for spec, want := range map[string]string{
		"zod":                  "npm:/zod@3.25.76",
		"zod/v4":               "npm:/zod@3.25.76/v4",
		"npm:zod":              "npm:/zod@3.25.76",
		"npm:zod/v4/core":      "npm:/zod@3.25.76/v4/core",
		"npm:zod@^3":           "npm:/zod@3.25.76",
		"npm:/zod@3.25.76/v4":  "npm:/zod@3.25.76/v4",
		"npm:zod@~3.22":        "",
		"npm:lodash":           "",
		"./mcp/x":              "",
		"node:fs":              "",
		"jsr:zod":              "",
		"https://example.com/": "",
	} {
		got, ok := c.Rewrite(spec)
		if got != want || ok != (want != "") {
			t.Errorf("Rewrite(%q) = %q, %v; want %q", spec, got, ok, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"npm:zod@^3", "jsr:@std/path@^1", "npm:@types/node@>=20 <22", "npm:x@^1 || ^2",
		"npm:x@1.2.3 - 2.3", "npm:a@1.0.0-rc.1+b", "npm:zod@", "npm:@/x", "npm:x@~>1.x"} {
		f.Add(s, "npm:zod@^3.22")
	}
	f.Fuzz(func(t *testing.T, entry, spec string) {
		a, err := Parse([]string{entry})
		if err != nil {
			if !strings.Contains(err.Error(), "allowed package") {
				t.Errorf("Parse(%q) error %q does not name the entry", entry, err)
			}
			return
		}
		// A normalized entry parses to itself.
		b, err := Parse(a.Entries())
		if err != nil {
			t.Fatalf("Parse(Parse(%q).Entries()) = %v", entry, err)
		}
		if a.Hash() != b.Hash() {
			t.Errorf("normalizing %q changed its hash", entry)
		}
		s := a.Specs()[0]
		// The package itself, unversioned, is always allowed.
		if err := a.Check(s.Registry + ":" + s.Name); err != nil {
			t.Errorf("Check of the allowlisted %q: %v", s, err)
		}
		if err := a.Check(spec); err != nil {
			var na *NotAllowedError
			if !errors.Is(err, ErrNotPackage) && !errors.As(err, &na) {
				t.Errorf("Check(%q) = %T %v", spec, err, err)
			}
		}
	})
}
