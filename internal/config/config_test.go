package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const home = "/home/u"

// envOf returns an env lookup over m, with HOME defaulting to home.
func envOf(m map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := m[k]; ok {
			return v
		}
		if k == "HOME" {
			return home
		}
		return ""
	}
}

var cmpConfig = cmpopts.EquateEmpty()

var defaultPool = Pool{Max: 4, Min: 1, PerConversation: 2, IdleTimeout: 5 * time.Minute}

func TestDefaults(t *testing.T) {
	got, err := Load(envOf(nil), "")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Workspace: "/home/u/.mcp-conductor/workspace",
		CacheDir:  "/home/u/.cache/mcp-conductor",
		Sandbox: Sandbox{
			DefaultTimeout: 30000 * time.Millisecond,
			MaxTimeout:     300000 * time.Millisecond,
			MemoryMB:       256,
			MaxOutputBytes: 1048576,
			Pool:           defaultPool,
		},
		Store: Store{
			URL:               "sqlite:///home/u/.mcp-conductor/state.db",
			ConversationTTL:   24 * time.Hour,
			MaxConversations:  1000,
			MaxWorkspaceBytes: 100 << 20,
		},
		HTTP: HTTP{Addr: "127.0.0.1:8080"},
	}
	if diff := cmp.Diff(want, got, cmpConfig); diff != "" {
		t.Errorf("Load(defaults) mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, Default(home), cmpConfig); diff != "" {
		t.Errorf("Default(%q) mismatch (-want +got):\n%s", home, diff)
	}
	if err := Default(home).Validate(); err != nil {
		t.Errorf("Default(%q).Validate() = %v", home, err)
	}
	if !got.Sandbox.Permissions.IsZero() || got.Sandbox.Permissions.Flags() != nil {
		t.Errorf("default permissions = %v, want none", got.Sandbox.Permissions)
	}
}

func TestLoadNeedsHome(t *testing.T) {
	for _, h := range []string{"", "relative/home"} {
		if _, err := Load(envOf(map[string]string{"HOME": h}), ""); err == nil || !strings.Contains(err.Error(), "HOME") {
			t.Errorf("Load(HOME=%q) error = %v, want one naming HOME", h, err)
		}
	}
}

// TestEnvVars covers every MCP_CONDUCTOR_* variable with good and bad values.
func TestEnvVars(t *testing.T) {
	wd, _ := os.Getwd()
	tests := []struct {
		name string
		env  map[string]string
		// want edits the default config into the expected one.
		want func(c *Config)
		// wantErr lists substrings of the expected error; all must appear.
		wantErr []string
	}{
		{name: "workspace tilde", env: map[string]string{EnvWorkspace: "~/ws"},
			want: func(c *Config) { c.Workspace = "/home/u/ws" }},
		{name: "workspace userHome", env: map[string]string{EnvWorkspace: "${userHome}/a/../ws/"},
			want: func(c *Config) { c.Workspace = "/home/u/ws" }},
		{name: "workspace env", env: map[string]string{EnvWorkspace: "${env:DATA}/ws", "DATA": "/data"},
			want: func(c *Config) { c.Workspace = "/data/ws" }},
		{name: "workspace relative", env: map[string]string{EnvWorkspace: "ws"},
			want: func(c *Config) { c.Workspace = filepath.Join(wd, "ws") }},
		{name: "workspace unknown var", env: map[string]string{EnvWorkspace: "${home}/ws"},
			wantErr: []string{EnvWorkspace, "${home}/ws", "unknown variable ${home}"}},
		{name: "workspace unset env var", env: map[string]string{EnvWorkspace: "${env:NOPE}/ws"},
			wantErr: []string{EnvWorkspace, "NOPE is not set"}},
		{name: "workspace bad env name", env: map[string]string{EnvWorkspace: "${env:1X}"},
			wantErr: []string{EnvWorkspace, "not a valid environment variable name"}},
		{name: "workspace unterminated", env: map[string]string{EnvWorkspace: "${userHome"},
			wantErr: []string{EnvWorkspace, "unterminated"}},
		{name: "workspace blank", env: map[string]string{EnvWorkspace: "  "},
			wantErr: []string{EnvWorkspace, "must not be empty"}},

		{name: "cache", env: map[string]string{EnvCache: "~/c"},
			want: func(c *Config) { c.CacheDir = "/home/u/c" }},
		{name: "cache xdg", env: map[string]string{"XDG_CACHE_HOME": "/xdg"},
			want: func(c *Config) { c.CacheDir = "/xdg/mcp-conductor" }},
		{name: "cache xdg relative ignored", env: map[string]string{"XDG_CACHE_HOME": "xdg"},
			want: func(c *Config) {}},
		{name: "cache var wins over xdg", env: map[string]string{"XDG_CACHE_HOME": "/xdg", EnvCache: "/c"},
			want: func(c *Config) { c.CacheDir = "/c" }},
		{name: "cache bad", env: map[string]string{EnvCache: "${nope}"},
			wantErr: []string{EnvCache, "${nope}"}},

		{name: "deno path", env: map[string]string{EnvDeno: "~/bin/deno"},
			want: func(c *Config) { c.Deno = "/home/u/bin/deno" }},
		{name: "deno bare name", env: map[string]string{EnvDeno: "deno"},
			want: func(c *Config) { c.Deno = "deno" }},
		{name: "deno bad", env: map[string]string{EnvDeno: "${x}"},
			wantErr: []string{EnvDeno, "${x}"}},

		{name: "packages", env: map[string]string{EnvAllowedPackages: " npm:zod@^3 ,npm:axios@^1,jsr:@std/path,npm:zod@^3"},
			want: func(c *Config) { c.Sandbox.AllowedPackages = []string{"npm:zod@^3", "npm:axios@^1", "jsr:@std/path"} }},
		{name: "packages empty entry", env: map[string]string{EnvAllowedPackages: "npm:zod@^3,,jsr:@std/path"},
			wantErr: []string{EnvAllowedPackages, "npm:zod@^3,,jsr:@std/path", "empty entry"}},
		{name: "packages trailing comma", env: map[string]string{EnvAllowedPackages: "npm:zod@^3,"},
			wantErr: []string{EnvAllowedPackages, "empty entry"}},
		{name: "packages space inside", env: map[string]string{EnvAllowedPackages: "npm:zod @^3"},
			wantErr: []string{EnvAllowedPackages, "contains a space"}},

		{name: "run args", env: map[string]string{EnvRunArgs: "allow-read=~/data;/srv,--allow-net=api.example.com:443,deny-env"},
			want: func(c *Config) {
				c.Sandbox.Permissions = Permissions{Read: []string{"/home/u/data", "/srv"}, Net: []string{"api.example.com:443"}, Deny: map[string][]string{"env": {}}}
			}},
		{name: "run args refused", env: map[string]string{EnvRunArgs: "allow-read=/a,allow-all"},
			wantErr: []string{EnvRunArgs, "allow-all", "refused"}},

		{name: "default timeout", env: map[string]string{EnvDefaultTimeout: "1500"},
			want: func(c *Config) { c.Sandbox.DefaultTimeout = 1500 * time.Millisecond }},
		{name: "default timeout zero", env: map[string]string{EnvDefaultTimeout: "0"},
			wantErr: []string{EnvDefaultTimeout, `"0"`, "positive"}},
		{name: "default timeout negative", env: map[string]string{EnvDefaultTimeout: "-5"},
			wantErr: []string{EnvDefaultTimeout, `"-5"`, "positive"}},
		{name: "default timeout text", env: map[string]string{EnvDefaultTimeout: "30s"},
			wantErr: []string{EnvDefaultTimeout, `"30s"`, "integer number of milliseconds"}},
		{name: "default timeout float", env: map[string]string{EnvDefaultTimeout: "1.5"},
			wantErr: []string{EnvDefaultTimeout, `"1.5"`}},
		{name: "default timeout huge", env: map[string]string{EnvDefaultTimeout: "99999999999999999999"},
			wantErr: []string{EnvDefaultTimeout, "99999999999999999999"}},
		{name: "default timeout over 24h", env: map[string]string{EnvDefaultTimeout: "86400001", EnvMaxTimeout: "86400001"},
			wantErr: []string{EnvDefaultTimeout, "at most 86400000"}},
		{name: "default above max", env: map[string]string{EnvDefaultTimeout: "400000"},
			wantErr: []string{EnvDefaultTimeout, "400000 ms", "300000 ms", "the default"}},
		{name: "max timeout", env: map[string]string{EnvMaxTimeout: "600000"},
			want: func(c *Config) { c.Sandbox.MaxTimeout = 10 * time.Minute }},
		{name: "max below default", env: map[string]string{EnvMaxTimeout: "1000"},
			wantErr: []string{EnvMaxTimeout, "30000 ms", "1000 ms"}},
		{name: "max timeout bad", env: map[string]string{EnvMaxTimeout: "abc"},
			wantErr: []string{EnvMaxTimeout, `"abc"`}},
		{name: "both timeouts", env: map[string]string{EnvDefaultTimeout: "5000", EnvMaxTimeout: "5000"},
			want: func(c *Config) { c.Sandbox.DefaultTimeout, c.Sandbox.MaxTimeout = 5*time.Second, 5*time.Second }},

		{name: "memory", env: map[string]string{EnvMaxMemoryMB: "512"},
			want: func(c *Config) { c.Sandbox.MemoryMB = 512 }},
		{name: "memory min", env: map[string]string{EnvMaxMemoryMB: "16"},
			want: func(c *Config) { c.Sandbox.MemoryMB = 16 }},
		{name: "memory max", env: map[string]string{EnvMaxMemoryMB: "65536"},
			want: func(c *Config) { c.Sandbox.MemoryMB = 65536 }},
		{name: "memory too small", env: map[string]string{EnvMaxMemoryMB: "15"},
			wantErr: []string{EnvMaxMemoryMB, `"15"`, "from 16 to 65536"}},
		{name: "memory too big", env: map[string]string{EnvMaxMemoryMB: "65537"},
			wantErr: []string{EnvMaxMemoryMB, `"65537"`}},
		{name: "memory text", env: map[string]string{EnvMaxMemoryMB: "256MB"},
			wantErr: []string{EnvMaxMemoryMB, `"256MB"`, "integer"}},

		{name: "output", env: map[string]string{EnvMaxOutputBytes: "2048"},
			want: func(c *Config) { c.Sandbox.MaxOutputBytes = 2048 }},
		{name: "output max", env: map[string]string{EnvMaxOutputBytes: "9437184"},
			want: func(c *Config) { c.Sandbox.MaxOutputBytes = 9 << 20 }},
		{name: "output too small", env: map[string]string{EnvMaxOutputBytes: "1023"},
			wantErr: []string{EnvMaxOutputBytes, `"1023"`}},
		{name: "output too big", env: map[string]string{EnvMaxOutputBytes: "10485760"},
			wantErr: []string{EnvMaxOutputBytes, `"10485760"`, "below 10 MiB"}},
		{name: "output negative", env: map[string]string{EnvMaxOutputBytes: "-1"},
			wantErr: []string{EnvMaxOutputBytes, `"-1"`}},

		{name: "store sqlite", env: map[string]string{EnvStore: "sqlite://~/s.db"},
			want: func(c *Config) { c.Store.URL = "sqlite:///home/u/s.db" }},
		{name: "store sqlite abs", env: map[string]string{EnvStore: "sqlite:///var/lib/c/../s.db"},
			want: func(c *Config) { c.Store.URL = "sqlite:///var/lib/s.db" }},
		{name: "store redis", env: map[string]string{EnvStore: "redis://localhost:6379/2"},
			want: func(c *Config) { c.Store.URL = "redis://localhost:6379/2" }},
		{name: "store rediss no db", env: map[string]string{EnvStore: "rediss://cache.internal:6380"},
			want: func(c *Config) { c.Store.URL = "rediss://cache.internal:6380" }},
		{name: "store sqlite relative", env: map[string]string{EnvStore: "sqlite://state.db"},
			wantErr: []string{EnvStore, "sqlite://state.db", "absolute"}},
		{name: "store sqlite empty", env: map[string]string{EnvStore: "sqlite://"},
			wantErr: []string{EnvStore, "no path"}},
		{name: "store postgres", env: map[string]string{EnvStore: "postgres://db/x"},
			wantErr: []string{EnvStore, "postgres://db/x", "sqlite:///abs/path.db or redis://host:port/db"}},
		{name: "store redis no port", env: map[string]string{EnvStore: "redis://localhost/0"},
			wantErr: []string{EnvStore, "redis://localhost/0", "port"}},
		{name: "store redis bad db", env: map[string]string{EnvStore: "redis://localhost:6379/x"},
			wantErr: []string{EnvStore, `database "x"`}},

		{name: "token", env: map[string]string{EnvHTTPToken: "abc.DEF-123"},
			want: func(c *Config) { c.HTTP.Token = "abc.DEF-123" }},
		{name: "token with space", env: map[string]string{EnvHTTPToken: "abc def"},
			wantErr: []string{EnvHTTPToken, "value not shown"}},

		{name: "several errors together", env: map[string]string{EnvMaxMemoryMB: "1", EnvMaxOutputBytes: "1"},
			wantErr: []string{EnvMaxMemoryMB, EnvMaxOutputBytes}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(envOf(tt.env), "")
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Load(%v) = nil error, want one containing %q", tt.env, tt.wantErr)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("Load(%v) error = %q, want it to contain %q", tt.env, err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(%v) = %v", tt.env, err)
			}
			want := Default(home)
			tt.want(want)
			if diff := cmp.Diff(want, got, cmpConfig); diff != "" {
				t.Errorf("Load(%v) mismatch (-want +got):\n%s", tt.env, diff)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	x := expander{home: home, env: envOf(map[string]string{"A": "aa", "B": "/b"})}
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "plain", want: "plain"},
		{in: "~", want: home},
		{in: "~/x", want: home + "/x"},
		{in: "a~/x", want: "a~/x"},
		{in: "~user/x", want: "~user/x"},
		{in: "${userHome}", want: home},
		{in: "${env:A}-${env:A}", want: "aa-aa"},
		{in: "${env:B}/x/${userHome}", want: "/b/x//home/u"},
		{in: "$HOME and $ alone", want: "$HOME and $ alone"},
		{in: "${HOME}", wantErr: "unknown variable ${HOME}"},
		{in: "${env:}", wantErr: "not a valid environment variable name"},
		{in: "${env:UNSET}", wantErr: "UNSET is not set"},
		{in: "x${", wantErr: "unterminated"},
	}
	for _, tt := range tests {
		got, err := x.expand(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("expand(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestClampTimeout(t *testing.T) {
	c := Default(home)
	tests := []struct {
		in          time.Duration
		want        time.Duration
		wantClamped bool
	}{
		{0, 30 * time.Second, false},
		{-time.Second, 30 * time.Second, false},
		{time.Millisecond, time.Millisecond, false},
		{300 * time.Second, 300 * time.Second, false},
		{300*time.Second + 1, 300 * time.Second, true},
		{time.Hour, 300 * time.Second, true},
	}
	for _, tt := range tests {
		got, clamped := c.ClampTimeout(tt.in)
		if got != tt.want || clamped != tt.wantClamped {
			t.Errorf("ClampTimeout(%v) = %v, %v; want %v, %v", tt.in, got, clamped, tt.want, tt.wantClamped)
		}
	}
}
