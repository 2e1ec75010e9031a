package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var testExpander = expander{home: home, env: envOf(map[string]string{"DATA": "/data"})}

// runArgsGood are RUN_ARGS values that parse; also fuzz seeds.
var runArgsGood = []struct {
	in        string
	want      Permissions
	wantFlags []string
}{
	{in: "", want: Permissions{}},
	{in: "  ", want: Permissions{}},
	{in: "allow-read=/a", want: Permissions{Read: []string{"/a"}},
		wantFlags: []string{"--allow-read=/a"}},
	{in: "--allow-read=/a;/b/../c/", want: Permissions{Read: []string{"/a", "/c"}},
		wantFlags: []string{"--allow-read=/a,/c"}},
	{in: "allow-read=~/x; ${env:DATA} ;${userHome}", want: Permissions{Read: []string{"/home/u/x", "/data", "/home/u"}}},
	{in: "allow-read=/a,allow-read=/b;/a", want: Permissions{Read: []string{"/a", "/b"}}},
	{in: " allow-read = /a , deny-net ", want: Permissions{Read: []string{"/a"}, Deny: map[string][]string{"net": {}}}},
	{in: "allow-write=/w", want: Permissions{Write: []string{"/w"}}},
	{in: "allow-net", want: Permissions{NetAll: true}, wantFlags: []string{"--allow-net"}},
	{in: "allow-net=example.com,allow-net", want: Permissions{Net: []string{"example.com"}, NetAll: true},
		wantFlags: []string{"--allow-net"}},
	{in: "allow-net=example.com:443;127.0.0.1:8080;[::1]:80;*.example.org;localhost",
		want:      Permissions{Net: []string{"example.com:443", "127.0.0.1:8080", "[::1]:80", "*.example.org", "localhost"}},
		wantFlags: []string{"--allow-net=example.com:443,127.0.0.1:8080,[::1]:80,*.example.org,localhost"}},
	{in: "allow-env=HOME;AWS_*", want: Permissions{Env: []string{"HOME", "AWS_*"}}},
	{in: "allow-run=git;/usr/bin/curl", want: Permissions{Run: []string{"git", "/usr/bin/curl"}}},
	{in: "allow-sys=hostname;osRelease", want: Permissions{Sys: []string{"hostname", "osRelease"}}},
	{in: "deny-read=/etc,deny-net,deny-env=SECRET,deny-run,deny-sys,deny-ffi,deny-write=/x,deny-import=evil.com",
		want: Permissions{Deny: map[string][]string{
			"read": {"/etc"}, "net": {}, "env": {"SECRET"}, "run": {}, "sys": {}, "ffi": {}, "write": {"/x"}, "import": {"evil.com"},
		}},
		wantFlags: []string{"--deny-read=/etc", "--deny-write=/x", "--deny-net", "--deny-env=SECRET", "--deny-run", "--deny-sys", "--deny-ffi", "--deny-import=evil.com"}},
	{in: "deny-net=a.com,deny-net", want: Permissions{Deny: map[string][]string{"net": {}}}},
	{in: "deny-net,deny-net=a.com", want: Permissions{Deny: map[string][]string{"net": {}}}},
	{in: "deny-read", want: Permissions{Deny: map[string][]string{"read": {}}}},
	{in: "deny-write=/a,deny-write=/b;/a", want: Permissions{Deny: map[string][]string{"write": {"/a", "/b"}}}},
	{in: "allow-sys=uid,allow-run=git,allow-env=X,allow-net=h,allow-write=/w,allow-read=/r,deny-env",
		want: Permissions{Read: []string{"/r"}, Write: []string{"/w"}, Net: []string{"h"}, Env: []string{"X"}, Run: []string{"git"}, Sys: []string{"uid"},
			Deny: map[string][]string{"env": {}}},
		wantFlags: []string{"--allow-read=/r", "--allow-write=/w", "--allow-net=h", "--allow-env=X", "--allow-run=git", "--allow-sys=uid", "--deny-env"}},
}

// runArgsBad are RUN_ARGS values that must be refused, with a word of the error.
var runArgsBad = []struct{ in, wantErr string }{
	{"allow-all", "allow-all is refused"},
	{"--allow-all", "allow-all is refused"},
	{"A", "-A grants every permission"},
	{"-A", "-A grants every permission"},
	{"allow-read=/a,-A", "-A"},
	{"allow-run", "unscoped allow-run is refused"},
	{"allow-ffi", "allow-ffi is refused"},
	{"allow-ffi=/lib/x.so", "allow-ffi is refused"},
	{"allow-env", "unscoped allow-env is refused"},
	{"allow-sys", "unscoped allow-sys is refused"},
	{"allow-hrtime", "obsolete"},
	{"deny-hrtime", "obsolete"},
	{"allow-import", "allow-import is refused"},
	{"allow-import=deno.land", "allow-import is refused"},
	{"allow-read", "whole filesystem"},
	{"allow-write", "whole filesystem"},
	{"allow-read=/", "whole filesystem"},
	{"allow-write=/tmp/..", "whole filesystem"},
	{"allow-foo", "unknown or unsupported flag allow-foo"},
	{"v8-flags=--max-old-space-size=9999", "unknown or unsupported flag v8-flags"},
	{"unstable", "unknown or unsupported flag unstable"},
	{"import-map=/x.json", "unknown or unsupported flag import-map"},
	{"config=/deno.json", "unknown or unsupported flag config"},
	{"cached-only", "unknown or unsupported"},
	{"allow-scripts", "unknown or unsupported"},
	{"-allow-read=/a", "unknown or unsupported"},
	{"Allow-Read=/a", "unknown or unsupported"},
	{"deny-foo", "unknown or unsupported"},
	{"allow-read=/a,", "entry 2 is empty"},
	{",allow-read=/a", "entry 1 is empty"},
	{"allow-read=", "empty value"},
	{"allow-read=/a;;/b", "empty value"},
	{"allow-read=${HOME}", "unknown variable ${HOME}"},
	{"allow-read=${env:UNSET_X}", "UNSET_X is not set"},
	{"allow-net=http://example.com", "not a URL"},
	{"allow-net=example.com/path", "not a URL"},
	{"allow-net=example.com:0", "port"},
	{"allow-net=example.com:70000", "port"},
	{"allow-net=example.com:http", "port"},
	{"allow-net=::1", "brackets"},
	{"allow-net=[1.2.3.4]", "IPv6"},
	{"allow-net=*", "not a host name"},
	{"allow-net=ex ample.com", "not a URL"},
	{"allow-env=*", "not an environment variable name"},
	{"allow-env=A-B", "not an environment variable name"},
	{"allow-env=1A", "not an environment variable name"},
	{"allow-run=git status", "not a program name"},
	{"allow-run=..", "not a program name"},
	{"npm:zod", "unknown or unsupported"},
	{"allow read=/a", "unknown or unsupported"},
	{"allow-sys=everything", "not a Deno sys permission"},
	{"deny-sys=nope", "not a Deno sys permission"},
	{"deny-net=http://x", "not a URL"},
}

func TestParseRunArgs(t *testing.T) {
	for _, tt := range runArgsGood {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseRunArgs(tt.in, testExpander, "")
			if err != nil {
				t.Fatalf("parseRunArgs(%q) = %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseRunArgs(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if tt.wantFlags != nil {
				if diff := cmp.Diff(tt.wantFlags, got.Flags()); diff != "" {
					t.Errorf("parseRunArgs(%q).Flags() mismatch (-want +got):\n%s", tt.in, diff)
				}
			}
			if err := got.Validate(); err != nil {
				t.Errorf("parseRunArgs(%q).Validate() = %v", tt.in, err)
			}
		})
	}
	for _, tt := range runArgsBad {
		t.Run("bad/"+tt.in, func(t *testing.T) {
			got, err := parseRunArgs(tt.in, testExpander, "")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("parseRunArgs(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			// Through Load, the error names the variable and the value.
			_, err = Load(envOf(map[string]string{EnvRunArgs: tt.in}), "")
			if err == nil || !strings.Contains(err.Error(), EnvRunArgs) || !strings.Contains(err.Error(), tt.in) {
				t.Errorf("Load(RUN_ARGS=%q) error = %v, want it to name %s and the value", tt.in, err, EnvRunArgs)
			}
		})
	}
}

// TestFlagsAcceptedByDeno runs the real Deno with the flags of every good
// case, so the parser never produces a flag Deno rejects.
func TestFlagsAcceptedByDeno(t *testing.T) {
	deno := denoBin(t)
	cases := []Permissions{{Sys: sysNames}, {Net: []string{"[::1]", "10.0.0.1"}}}
	for _, tt := range runArgsGood {
		cases = append(cases, tt.want)
	}
	for _, p := range cases {
		args := append([]string{"run", "--no-prompt", "--no-config", "--no-lock", "--no-remote"}, p.Flags()...)
		args = append(args, "data:text/javascript,Deno.exit(0)")
		cmd := exec.Command(deno, args...)
		cmd.Env = []string{"HOME=" + t.TempDir(), "NO_COLOR=1", "DENO_NO_UPDATE_CHECK=1"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("deno %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestRunArgsRelativePath(t *testing.T) {
	wd, _ := os.Getwd()
	got, err := parseRunArgs("allow-read=data", testExpander, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(wd, "data")}; !cmp.Equal(got.Read, want) {
		t.Errorf("parseRunArgs(allow-read=data).Read = %q, want %q", got.Read, want)
	}
}

func TestPermissionsString(t *testing.T) {
	if got := (Permissions{}).String(); got != "none" {
		t.Errorf("Permissions{}.String() = %q, want none", got)
	}
	p := Permissions{Read: []string{"/a", "/b"}, Deny: map[string][]string{"net": {"x"}}}
	if got, want := p.String(), "--allow-read=/a,/b --deny-net=x"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestPermissionsFlagsDeterministic(t *testing.T) {
	p := Permissions{Deny: map[string][]string{}}
	for _, k := range permKinds {
		p.Deny[k] = []string{}
	}
	first := p.Flags()
	for range 50 {
		if diff := cmp.Diff(first, p.Flags()); diff != "" {
			t.Fatalf("Flags() changed between calls:\n%s", diff)
		}
	}
}

func TestPermissionsValidate(t *testing.T) {
	bad := []Permissions{
		{Read: []string{"relative"}},
		{Read: []string{"/a/../b"}},
		{Read: []string{"/"}},
		{Write: []string{""}},
		{Read: []string{"/a,b"}},
		{Net: []string{"http://x"}},
		{Env: []string{"*"}},
		{Sys: []string{"all"}},
		{Deny: map[string][]string{"hrtime": {}}},
		{Deny: map[string][]string{"read": {"rel"}}},
	}
	for _, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("%#v.Validate() = nil, want an error", p)
		}
	}
}

func FuzzParseRunArgs(f *testing.F) {
	for _, tt := range runArgsGood {
		f.Add(tt.in)
	}
	for _, tt := range runArgsBad {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseRunArgs(s, testExpander, "/base")
		if err != nil {
			return
		}
		// Whatever parses is valid, never grants everything, and its flags
		// are all permission flags Deno takes.
		if err := p.Validate(); err != nil {
			t.Fatalf("parseRunArgs(%q) = %#v, which fails Validate: %v", s, p, err)
		}
		for _, fl := range p.Flags() {
			name, _, _ := strings.Cut(fl, "=")
			switch name {
			case "--allow-read", "--allow-write", "--allow-net", "--allow-env", "--allow-run", "--allow-sys",
				"--deny-read", "--deny-write", "--deny-net", "--deny-env", "--deny-run", "--deny-sys", "--deny-ffi", "--deny-import":
			default:
				t.Fatalf("parseRunArgs(%q).Flags() has %q", s, fl)
			}
			if fl == "--allow-read" || fl == "--allow-write" || fl == "--allow-run" || fl == "--allow-env" || fl == "--allow-sys" {
				t.Fatalf("parseRunArgs(%q).Flags() has unscoped %q", s, fl)
			}
		}
		for _, v := range append(p.Read, p.Write...) {
			if v == "/" {
				t.Fatalf("parseRunArgs(%q) grants the root", s)
			}
		}
	})
}

func TestPermissionsMerge(t *testing.T) {
	a := Permissions{Read: []string{"/a"}, Deny: map[string][]string{"net": {}, "env": {"X"}}}
	b := Permissions{Read: []string{"/b", "/a"}, NetAll: true, Deny: map[string][]string{"net": {"h"}, "env": {"Y"}, "run": {}}}
	aCopy, bCopy := a.Clone(), b.Clone()
	got := a.Merge(b)
	want := Permissions{Read: []string{"/a", "/b"}, NetAll: true,
		Deny: map[string][]string{"net": {}, "env": {"X", "Y"}, "run": {}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Merge mismatch (-want +got):\n%s", diff)
	}
	// A whole-permission deny survives in either order.
	if got := b.Merge(a).Deny["net"]; len(got) != 0 {
		t.Errorf("b.Merge(a).Deny[net] = %q, want the whole permission denied", got)
	}
	if diff := cmp.Diff(aCopy, a); diff != "" {
		t.Errorf("Merge modified its receiver:\n%s", diff)
	}
	if diff := cmp.Diff(bCopy, b); diff != "" {
		t.Errorf("Merge modified its argument:\n%s", diff)
	}
	got.Read[0] = "/changed"
	if a.Read[0] != "/a" {
		t.Errorf("Merge result shares memory with its receiver")
	}
}
