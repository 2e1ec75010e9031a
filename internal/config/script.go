package config

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// scriptTimeout bounds the evaluation of a TypeScript/JavaScript config.
const scriptTimeout = 60 * time.Second

// Markers of the channel between evalScript and its wrapper program.
const (
	envRequestMark = "\x00conductor-env "
	resultMark     = "\x00conductor-result "
)

// scriptEnvShim is the first module Deno evaluates (a data: URL, so no
// file is written). It serves Deno.env from the environment given to Load:
// each Deno.env.get is a request on stderr answered on stdin.
const scriptEnvShim = `const enc = new TextEncoder(), dec = new TextDecoder();
const buf = new Uint8Array(65536);
let pending = "";
export function writeAll(f, s) { let b = enc.encode(s); while (b.length > 0) b = b.subarray(f.writeSync(b)); }
function ask(name) {
  writeAll(Deno.stderr, "\u0000conductor-env " + JSON.stringify(name) + "\n");
  for (;;) {
    const i = pending.indexOf("\n");
    if (i >= 0) { const line = pending.slice(0, i); pending = pending.slice(i + 1); return JSON.parse(line); }
    const n = Deno.stdin.readSync(buf);
    if (n === null) throw new Error("conductor: environment channel closed");
    pending += dec.decode(buf.subarray(0, n), { stream: true });
  }
}
const overlay = new Map();
const env = Deno.env;
env.get = (k) => { k = String(k); if (overlay.has(k)) return overlay.get(k); const v = ask(k); return v === null ? undefined : v; };
env.has = (k) => env.get(k) !== undefined;
env.set = (k, v) => { overlay.set(String(k), String(v)); };
env.delete = (k) => { overlay.set(String(k), undefined); };
env.toObject = () => { throw new Error("Deno.env.toObject() is not available in a conductor config file; use Deno.env.get(NAME)"); };
`

// scriptEntry is Deno's entry: it imports the shim, then the config module
// statically (so its own local imports load without any read permission),
// and prints the default export (called first if a function, awaited) as
// JSON after resultMark. %s are the shim's data: URL and the config's URL.
const scriptEntry = `import { writeAll } from %s;
import * as mod from %s;
if (!("default" in mod)) throw new Error("the config module has no default export");
let v = mod.default;
if (typeof v === "function") v = v();
v = await v;
const out = JSON.stringify(v);
if (out === undefined) throw new Error("the default export cannot be turned into JSON");
writeAll(Deno.stdout, "\n\u0000conductor-result " + out + "\n");
Deno.exit(0);
`

func dataURL(js string) string {
	return "data:text/javascript;base64," + base64.StdEncoding.EncodeToString([]byte(js))
}

// denoForScript picks the Deno binary for a TypeScript config: the option,
// then MCP_CONDUCTOR_DENO, then "deno" on the PATH of the injected env.
func (l *loader) denoForScript() string {
	if l.opts.Deno != "" {
		return l.opts.Deno
	}
	if v := l.env(EnvDeno); v != "" {
		if p, err := l.denoPath(v, ""); err == nil {
			return p
		}
	}
	return "deno"
}

// lookPath finds name on the PATH of env (not of this process).
func lookPath(name string, env func(string) string) (string, error) {
	if strings.Contains(name, "/") {
		if fi, err := os.Stat(name); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("Deno binary %s is not an executable file", name)
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(env("PATH")) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %q on PATH: a TypeScript/JavaScript config file needs Deno; set %s or run `conductor setup`, or use a JSON/YAML file", name, EnvDeno)
}

// evalScript runs the config module at path with Deno and returns the JSON
// of its default export. The module and its local static imports may read
// the environment (Deno.env.get, served from env) and nothing else: no file
// reads at run time, no network, no remote imports, no writes, no
// subprocesses. Values handed to the module are
// scrubbed from any error text, since they may be secrets.
func evalScript(path, deno string, env func(string) string) ([]byte, error) {
	bin, err := lookPath(deno, env)
	if err != nil {
		return nil, err
	}
	entry := dataURL(fmt.Sprintf(scriptEntry, strconvQuoteJS(dataURL(scriptEnvShim)),
		strconvQuoteJS((&url.URL{Scheme: "file", Path: path}).String())))

	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run",
		"--no-prompt", "--no-config", "--no-lock", "--no-remote", "--cached-only", "--node-modules-dir=none",
		"--allow-env", entry)
	cmd.Dir = filepath.Dir(path)
	// Deno itself needs HOME/DENO_DIR for its cache; the module's view of
	// the environment goes through the channel above.
	cmd.Env = []string{"NO_COLOR=1", "DENO_NO_UPDATE_CHECK=1"}
	for _, k := range []string{"HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"} {
		if v := env(k); v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.WaitDelay = 2 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	var stdout limitedBuffer
	stdout.max = 16 << 20
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}

	var (
		mu      sync.Mutex
		secrets []string
		errText limitedBuffer
		wg      sync.WaitGroup
	)
	errText.max = 8 << 10
	wg.Go(func() {
		defer stdin.Close()
		r := bufio.NewReader(stderr)
		for {
			line, err := r.ReadString('\n')
			if rest, ok := strings.CutPrefix(line, envRequestMark); ok {
				var name string
				var answer []byte
				if json.Unmarshal([]byte(strings.TrimSpace(rest)), &name) == nil {
					v := env(name)
					if v != "" {
						mu.Lock()
						secrets = append(secrets, v)
						mu.Unlock()
						answer, _ = json.Marshal(v)
					} else {
						answer = []byte("null")
					}
				} else {
					answer = []byte("null")
				}
				stdin.Write(append(answer, '\n'))
			} else {
				errText.Write([]byte(line))
			}
			if err != nil {
				return
			}
		}
	})
	wg.Wait()
	werr := cmd.Wait()

	scrub := func(s string) string {
		mu.Lock()
		defer mu.Unlock()
		// Longest first, so a secret containing another is removed whole.
		slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
		for _, v := range secrets {
			if len(v) >= 3 {
				s = strings.ReplaceAll(s, v, "<redacted>")
			}
		}
		return strings.TrimSpace(s)
	}
	if werr != nil {
		msg := scrub(errText.String())
		if ctx.Err() != nil {
			return nil, fmt.Errorf("evaluating with Deno took more than %s: %s", scriptTimeout, msg)
		}
		return nil, fmt.Errorf("evaluating with Deno: %v: %s", werr, msg)
	}
	out := stdout.Bytes()
	i := bytes.LastIndex(out, []byte(resultMark))
	if stdout.truncated {
		return nil, fmt.Errorf("evaluating with Deno: output larger than %d bytes", stdout.max)
	}
	if i < 0 {
		return nil, fmt.Errorf("evaluating with Deno: no result printed: %s", scrub(errText.String()))
	}
	return bytes.TrimSpace(out[i+len(resultMark):]), nil
}

// strconvQuoteJS quotes s as a JavaScript string literal (JSON is one).
func strconvQuoteJS(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// limitedBuffer keeps the first max bytes written and drops the rest.
type limitedBuffer struct {
	bytes.Buffer
	max       int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room < len(p) {
		b.truncated = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

var _ io.Writer = (*limitedBuffer)(nil)
