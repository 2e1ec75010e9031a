package sandbox

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/evanw/esbuild/pkg/api"
)

// userFile is the name user code carries in error locations and stack traces.
const userFile = "main.ts"

// Importer decides what user code may import. The sandbox itself refuses
// local files, URLs and everything it cannot vouch for; the two hooks open the
// doors the conductor wants open.
type Importer struct {
	// Module resolves "./mcp/<server>" to an absolute path of a generated
	// module, or returns an error the user will read.
	Module func(server string) (string, error)
	// Package checks an npm:, jsr:, node: or bare specifier against the
	// administrator's allowlist. Nil allows node: built-ins only.
	Package func(specifier string) error
}

// prepared is user code ready for the harness: the body of an async
// function (fn), or, when it needs what only a module has (export,
// import.meta), a module to load from a blob: URL.
//
// Its static imports are not imports any more: each became a shim that takes
// the module's namespace from the harness (__conductor_ns), which imports
// the specifiers of imports first, unless the process loaded them while it
// waited. A pooled process thus runs a program without Deno's module loader,
// which costs about a millisecond even when every module is loaded already.
type prepared struct {
	js string
	// fn: js is the body of an async function, whose one parameter is named
	// resultKey; otherwise js is a module, which exports resultKey.
	fn        bool
	resultKey string // holds the last expression's value; "" when none
	imports   []string
	srcmap    *sourceMap
	// prefixLine/prefixCols compensate the column shift of the rewritten
	// last expression statement (1-based line in js).
	prefixLine, prefixCols int
}

// fnHeaderLines is how many lines V8 puts before js in the source of an
// async function made by the harness: "(async function anonymous(K\n) {\n",
// then the "use strict" line of fnPrologue.
const fnHeaderLines = 3

// fnPrologue starts a function body: user code is strict, as in a module.
const fnPrologue = "\"use strict\";\n"

// fnSourceURL names function code in V8's stack traces.
const fnSourceURL = "conductor:main"

// SyntaxError is a compile-time problem in user code, with its location.
type SyntaxError struct {
	Line, Column int // 1-based
	Message      string
}

func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return e.Message
	}
	return fmt.Sprintf("%s:%d:%d: %s", userFile, e.Line, e.Column, e.Message)
}

var mcpImport = regexp.MustCompile(`^\./mcp/([A-Za-z0-9_-]+)(\.ts|\.js)?$`)

// prepare strips types, checks and rewrites imports, and exports the value of
// the last top-level expression statement under a random name.
func prepare(code string, imp Importer) (*prepared, error) {
	p, _, err := build(code, imp)
	if err != nil {
		return nil, err
	}
	p.captureLastExpression()
	return p, nil
}

// nsNamespace is esbuild's namespace of import shims; a shim's path is the
// resolved specifier.
const nsNamespace = "conductor-ns"

// build runs esbuild and reports how each import was resolved.
func build(code string, imp Importer) (*prepared, map[string]string, error) {
	var mu sync.Mutex
	resolved := map[string]string{}
	var imports []string
	plugin := api.Plugin{
		Name: "conductor-imports",
		Setup: func(b api.PluginBuild) {
			b.OnResolve(api.OnResolveOptions{Filter: ".*"}, func(args api.OnResolveArgs) (api.OnResolveResult, error) {
				if args.Kind == api.ResolveEntryPoint || args.Namespace == nsNamespace {
					return api.OnResolveResult{}, nil
				}
				path, mcp, err := resolveImport(args.Path, imp)
				if err != nil {
					return api.OnResolveResult{}, err
				}
				mu.Lock()
				defer mu.Unlock()
				resolved[args.Path] = path
				if args.Kind != api.ResolveJSImportStatement {
					// import() and require() stay: they load when they run.
					return api.OnResolveResult{Path: path, External: true}, nil
				}
				if !slices.Contains(imports, path) {
					imports = append(imports, path)
				}
				kind := "pkg"
				if mcp {
					kind = "mcp"
				}
				return api.OnResolveResult{Path: path, Namespace: nsNamespace, PluginData: kind}, nil
			})
			b.OnLoad(api.OnLoadOptions{Filter: ".*", Namespace: nsNamespace}, func(args api.OnLoadArgs) (api.OnLoadResult, error) {
				src := shim(args.Path, args.PluginData == "mcp")
				return api.OnLoadResult{Contents: &src, Loader: api.LoaderJS}, nil
			})
		},
	}
	res := api.Build(api.BuildOptions{
		Stdin: &api.StdinOptions{
			Contents:   code,
			Loader:     api.LoaderTS,
			Sourcefile: userFile,
		},
		Bundle:            true,
		Write:             false,
		Outfile:           "out.js",
		Format:            api.FormatESModule,
		Target:            api.ESNext,
		Platform:          api.PlatformNeutral,
		Sourcemap:         api.SourceMapExternal,
		SourcesContent:    api.SourcesContentExclude,
		LegalComments:     api.LegalCommentsNone,
		LogLevel:          api.LogLevelSilent,
		Plugins:           []api.Plugin{plugin},
		TsconfigRaw:       `{"compilerOptions":{"verbatimModuleSyntax":false,"useDefineForClassFields":true}}`,
		IgnoreAnnotations: true,
		TreeShaking:       api.TreeShakingFalse,
		// V8 does not run decorators yet: esbuild lowers them.
		Supported: map[string]bool{"decorators": false},
	})
	if len(res.Errors) > 0 {
		return nil, nil, buildError(res.Errors[0])
	}
	var js, smap []byte
	for _, f := range res.OutputFiles {
		if strings.HasSuffix(f.Path, ".map") {
			smap = f.Contents
		} else {
			js = f.Contents
		}
	}
	p := &prepared{js: plainToESM(string(js)), imports: imports}
	p.fn = !moduleOnly(p.js)
	if len(smap) > 0 {
		sm, err := parseSourceMap(smap)
		if err != nil {
			return nil, nil, fmt.Errorf("source map: %w", err)
		}
		p.srcmap = sm
	}
	return p, resolved, nil
}

// prepCache keeps esbuild's output for code seen recently, so an unchanged
// program is not parsed again. An entry is used only if every import still
// resolves as it did (the resolvers run again, with their side effects and
// refusals); the result key is drawn afresh for every run.
type prepCache struct {
	mu      sync.Mutex
	entries map[[32]byte]*prepEntry
	order   [][32]byte // oldest first
}

type prepEntry struct {
	js       string
	fn       bool
	imports  []string
	srcmap   *sourceMap // read-only once parsed
	resolved map[string]string
}

const (
	prepCacheEntries = 128
	prepCacheMaxCode = 64 << 10
)

func (c *prepCache) prepare(code string, imp Importer) (*prepared, error) {
	if len(code) > prepCacheMaxCode {
		return prepare(code, imp)
	}
	key := sha256.Sum256([]byte(code))
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e != nil && stillResolves(e.resolved, imp) {
		p := &prepared{js: e.js, fn: e.fn, imports: e.imports, srcmap: e.srcmap}
		p.captureLastExpression()
		return p, nil
	}
	p, resolved, err := build(code, imp)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[[32]byte]*prepEntry{}
	}
	if _, ok := c.entries[key]; !ok {
		c.order = append(c.order, key)
		if len(c.order) > prepCacheEntries {
			delete(c.entries, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.entries[key] = &prepEntry{js: p.js, fn: p.fn, imports: p.imports, srcmap: p.srcmap, resolved: resolved}
	c.mu.Unlock()
	p.captureLastExpression()
	return p, nil
}

func stillResolves(resolved map[string]string, imp Importer) bool {
	for spec, path := range resolved {
		if got, _, err := resolveImport(spec, imp); err != nil || got != path {
			return false
		}
	}
	return true
}

func buildError(m api.Message) error {
	text := m.Text
	var pe *importError
	if d, ok := m.Detail.(error); ok && errors.As(d, &pe) {
		text = pe.msg
	}
	se := &SyntaxError{Message: text}
	if m.Location != nil {
		se.Line = m.Location.Line
		se.Column = m.Location.Column + 1
	}
	return se
}

// importError is a refused import; its text reaches the user as is.
type importError struct{ msg string }

func (e *importError) Error() string { return e.msg }

func refuse(format string, args ...any) error {
	return &importError{msg: fmt.Sprintf(format, args...)}
}

// fileURL is the URL the harness imports a generated module by.
func fileURL(path string) string { return "file://" + path }

// resolveImport maps one import specifier of user code to what the harness
// may load for it (mcp: a generated module), or refuses it.
func resolveImport(spec string, imp Importer) (resolved string, mcp bool, err error) {
	if m := mcpImport.FindStringSubmatch(spec); m != nil {
		if imp.Module == nil {
			return "", false, refuse("import %q: no MCP servers are configured", spec)
		}
		path, err := imp.Module(m[1])
		if err != nil {
			return "", false, refuse("import %q: %v", spec, err)
		}
		return fileURL(path), true, nil
	}
	path, err := resolvePackage(spec, imp)
	return path, false, err
}

func resolvePackage(spec string, imp Importer) (string, error) {
	switch {
	case strings.HasPrefix(spec, "./"), strings.HasPrefix(spec, "../"), strings.HasPrefix(spec, "/"),
		strings.HasPrefix(spec, "file:"), spec == "." || spec == "..":
		return "", refuse("import %q: local files cannot be imported; only ./mcp/<server> modules and allowed packages can", spec)
	case strings.HasPrefix(spec, "node:"):
		if imp.Package == nil {
			return spec, nil
		}
	case strings.HasPrefix(spec, "npm:"), strings.HasPrefix(spec, "jsr:"):
	case strings.Contains(spec, ":"):
		return "", refuse("import %q: URL imports are not allowed; only ./mcp/<server> modules and allowed packages can be imported", spec)
	}
	if imp.Package == nil {
		return "", refuse("import %q: no packages are allowed (the administrator's allowlist MCP_CONDUCTOR_ALLOWED_PACKAGES is empty)", spec)
	}
	if err := imp.Package(spec); err != nil {
		return "", refuse("%v", err)
	}
	return spec, nil
}

// captureLastExpression rewrites the last top-level expression statement
// `expr;` into `export const <key> = (expr);` in a module, and into
// `<key>.v = (expr);` in a function, whose parameter <key> is the harness's
// holder of the result.
func (p *prepared) captureLastExpression() {
	stmts := topLevelStatements(p.js)
	for i := len(stmts) - 1; i >= 0; i-- {
		s := stmts[i]
		text := p.js[s.start:s.end]
		if !isExpressionStatement(text) {
			continue
		}
		body := strings.TrimRight(text, " \t\r\n")
		tail := text[len(body):] // keep line breaks: later lines keep their numbers
		expr := strings.TrimRight(strings.TrimSpace(body), ";")
		key := "__conductor_result_" + randomHex(8)
		prefix := "export const " + key + " = ("
		if p.fn {
			prefix = key + ".v = ("
		}
		p.js = p.js[:s.start] + prefix + expr + ");" + tail + p.js[s.end:]
		p.resultKey = key
		p.prefixLine = strings.Count(p.js[:s.start], "\n") + 1
		p.prefixCols = len(prefix)
		return
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("sandbox: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

var declarationStarts = []string{
	"import ", "import{", "export ", "export{", "export*", "const ", "let ", "var ", "function ", "function*",
	"async function", "class ", "if ", "if(", "for ", "for(", "while ", "while(", "do ", "do{", "switch ",
	"switch(", "try ", "try{", "return", "throw ", "break", "continue", "debugger", "with ", "with(", "{", ";",
	"using ", "await using ",
}

var labelStart = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*\s*:[^:]`)

func isExpressionStatement(text string) bool {
	t := strings.TrimSpace(text)
	for strings.HasPrefix(t, "/*") { // esbuild's /* @__PURE__ */ annotations
		end := strings.Index(t, "*/")
		if end < 0 {
			return false
		}
		t = strings.TrimSpace(t[end+2:])
	}
	if t == "" || strings.HasPrefix(t, "//") {
		return false
	}
	for _, d := range declarationStarts {
		if strings.HasPrefix(t, d) {
			return false
		}
	}
	return !labelStart.MatchString(t)
}

type span struct{ start, end int }

// topLevelStatements splits esbuild's output into its top-level statements.
// esbuild prints every top-level statement from column 0 of a new line and
// indents everything nested, so a statement starts at each line that begins
// outside any bracket, string, template or comment.
func topLevelStatements(js string) []span {
	var starts []int
	depth := 0
	lineStart := true
	var templ []int // bracket depth at which each open template's ${ started
	i := 0
	n := len(js)
	prevSignificant := byte(0)
	prevWord := ""
	for i < n {
		c := js[i]
		if lineStart {
			lineStart = false
			if depth == 0 && len(templ) == 0 && c != '\n' && c != ' ' && c != '\t' && c != '}' && c != ')' && c != ']' {
				if !strings.HasPrefix(js[i:], "//") {
					starts = append(starts, i)
				}
			}
		}
		switch {
		case c == '\n':
			lineStart = true
			i++
			continue
		case c == '/' && i+1 < n && js[i+1] == '/':
			for i < n && js[i] != '\n' {
				i++
			}
			continue
		case c == '/' && i+1 < n && js[i+1] == '*':
			end := strings.Index(js[i+2:], "*/")
			if end < 0 {
				i = n
			} else {
				i += end + 4
			}
			continue
		case c == '"' || c == '\'':
			i = skipString(js, i)
			prevSignificant = c
			continue
		case c == '`':
			i = skipTemplate(js, i+1, &templ, depth)
			prevSignificant = '`'
			continue
		case c == '/' && (regexAllowed(prevSignificant) || (prevSignificant == 'w' && regexKeywords[prevWord])):
			i = skipRegex(js, i)
			prevSignificant = 'r'
			continue
		case isWordByte(c):
			j := i
			for j < n && isWordByte(js[j]) {
				j++
			}
			prevWord = js[i:j]
			prevSignificant = 'w'
			i = j
			continue
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']':
			depth--
		case c == '}':
			if len(templ) > 0 && templ[len(templ)-1] == depth {
				templ = templ[:len(templ)-1]
				i = skipTemplate(js, i+1, &templ, depth)
				prevSignificant = '`'
				continue
			}
			depth--
		}
		if c != ' ' && c != '\t' && c != '\r' {
			prevSignificant = c
		}
		i++
	}
	spans := make([]span, len(starts))
	for k, s := range starts {
		end := n
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		spans[k] = span{s, end}
	}
	return spans
}

func skipString(js string, i int) int {
	q := js[i]
	i++
	for i < len(js) {
		switch js[i] {
		case '\\':
			i += 2
			continue
		case q:
			return i + 1
		case '\n':
			return i
		}
		i++
	}
	return i
}

// skipTemplate scans template text from i (just after ` or }) to the closing
// ` (returning past it) or to a ${ (pushing the depth and returning past it).
func skipTemplate(js string, i int, templ *[]int, depth int) int {
	for i < len(js) {
		switch js[i] {
		case '\\':
			i += 2
			continue
		case '`':
			return i + 1
		case '$':
			if i+1 < len(js) && js[i+1] == '{' {
				*templ = append(*templ, depth)
				return i + 2
			}
		}
		i++
	}
	return i
}

var regexKeywords = map[string]bool{
	"return": true, "typeof": true, "case": true, "do": true, "else": true, "in": true, "of": true,
	"new": true, "delete": true, "void": true, "throw": true, "instanceof": true, "yield": true, "await": true,
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

func regexAllowed(prev byte) bool {
	switch prev {
	case 0, '(', ',', '=', ':', '[', '!', '&', '|', '?', '{', '}', ';', '+', '-', '*', '%', '<', '>', '~', '^':
		return true
	}
	return false
}

func skipRegex(js string, i int) int {
	i++
	inClass := false
	for i < len(js) {
		switch js[i] {
		case '\\':
			i += 2
			continue
		case '[':
			inClass = true
		case ']':
			inClass = false
		case '/':
			if !inClass {
				i++
				for i < len(js) && (js[i] >= 'a' && js[i] <= 'z') {
					i++
				}
				return i
			}
		case '\n':
			return i
		}
		i++
	}
	return i
}

// shim is the stand-in for an import of spec: the module's namespace, from
// the harness. A generated module's shim names its exports, so esbuild
// refuses an import of a tool that does not exist, as the module loader
// would. A package's shim is CommonJS-shaped (esbuild makes named and
// default imports property reads of the namespace).
func shim(spec string, mcp bool) string {
	get := "__conductor_ns(" + strconv.Quote(spec) + ")"
	if mcp {
		if names, ok := moduleExports(strings.TrimPrefix(spec, "file://")); ok {
			if len(names) == 0 {
				return get + ";\n"
			}
			return "export const { " + strings.Join(names, ", ") + " } = " + get + ";\n"
		}
	}
	return "module.exports = " + get + ";\n"
}

// exportCache keeps the value exports of generated modules. Their paths
// name their content (mcp/.v/<server>-<hash>.ts), and the key has the
// file's size and time as well.
var exportCache struct {
	sync.Mutex
	m map[string][]string
}

// moduleExports lists the value exports of the module file at path, as
// esbuild sees them; false if it cannot tell (the shim then exports the
// whole namespace without names).
func moduleExports(path string) ([]string, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false
	}
	key := fmt.Sprintf("%s|%d|%d", path, fi.Size(), fi.ModTime().UnixNano())
	exportCache.Lock()
	names, ok := exportCache.m[key]
	exportCache.Unlock()
	if ok {
		return names, true
	}
	res := api.Build(api.BuildOptions{
		EntryPoints: []string{path},
		Write:       false,
		Outdir:      "out",
		Format:      api.FormatESModule,
		Platform:    api.PlatformNeutral,
		Metafile:    true,
		LogLevel:    api.LogLevelSilent,
		TsconfigRaw: `{"compilerOptions":{"verbatimModuleSyntax":false}}`,
	})
	if len(res.Errors) > 0 {
		return nil, false
	}
	var meta struct {
		Outputs map[string]struct {
			Exports []string `json:"exports"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(res.Metafile), &meta); err != nil {
		return nil, false
	}
	names = []string{}
	for _, o := range meta.Outputs {
		for _, n := range o.Exports {
			if n != "default" && jsIdent.MatchString(n) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	exportCache.Lock()
	if exportCache.m == nil || len(exportCache.m) >= 1024 {
		exportCache.m = map[string][]string{}
	}
	exportCache.m[key] = names
	exportCache.Unlock()
	return names, true
}

var jsIdent = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

// moduleOnly reports whether prepared code needs to be a module: it has
// export statements (a shim-less import cannot remain) or import.meta,
// which a function cannot hold. The test is conservative: the words inside
// a string also count, and the program then runs as a module.
func moduleOnly(js string) bool {
	if strings.Contains(js, "import.meta") {
		return true
	}
	for _, s := range topLevelStatements(js) {
		t := js[s.start:s.end]
		if keyword(t, "export") || keyword(t, "import") && !strings.HasPrefix(t, "import(") {
			return true
		}
	}
	return false
}

// keyword reports whether statement text t starts with the word kw (and
// not an identifier that starts like it, such as import_zod).
func keyword(t, kw string) bool {
	return strings.HasPrefix(t, kw) && (len(t) == len(kw) || !isWordByte(t[len(kw)]))
}

// toESMHelper starts esbuild's helper that makes an ES module's view of a
// CommonJS module: a new object with a getter per property.
const toESMHelper = "var __toESM = (mod, isNodeMode, target) =>"

// plainToESM replaces esbuild's __toESM helper by the identity. Its only
// CommonJS modules are the package shims, whose namespaces (see wrap in
// harness.js) are what __toESM would build: getters, __esModule, default.
// Copying zod's hundreds of exports that way took 0.5 ms of a 1.5 ms run.
// Lines are kept, so the source map still holds. If esbuild prints the
// helper differently, the program keeps it and is only slower
// (TestPlainToESM notices).
func plainToESM(js string) string {
	if !strings.Contains(js, toESMHelper) {
		return js
	}
	for _, s := range topLevelStatements(js) {
		if stmt := js[s.start:s.end]; strings.HasPrefix(stmt, toESMHelper) {
			return js[:s.start] + "var __toESM = (mod) => mod;" + strings.Repeat("\n", strings.Count(stmt, "\n")) + js[s.end:]
		}
	}
	return js
}
