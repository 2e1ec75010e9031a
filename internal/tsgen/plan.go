package tsgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// named is a TypeScript type with a name: a tool's input or output, or a
// schema location reached by "$ref".
type named struct {
	name    string
	seq     int      // creation order, for a stable emission order
	doc     []string // JSDoc lines
	body    *ts
	selfRef bool // a root referenced by "$ref": "#"; cannot be inlined
}

// toolPlan is one tool with its identifiers and converted types.
type toolPlan struct {
	tool Tool
	id   string   // function identifier
	in   *named   // <Pascal>Input
	out  *named   // <Pascal>Output, nil without an output schema
	defs []*named // named types first created for this tool
}

// gen holds the naming state of one module.
type gen struct {
	tools     []*toolPlan
	typeNames map[string]bool
	byKey     map[string]*named // shared "$ref" targets, by the JSON they cover
	seq       int
}

// plan sorts the tools, assigns identifiers and type names, and converts all
// schemas. Everything that depends on the whole tool list happens here, so
// Module and Declarations agree on names.
func plan(server string, tools []Tool) (*gen, error) {
	_ = server
	sorted := slices.Clone(tools)
	slices.SortStableFunc(sorted, func(a, b Tool) int { return strings.Compare(a.Name, b.Name) })
	g := &gen{
		// Names the generated code uses itself.
		typeNames: map[string]bool{"Promise": true, "Record": true},
		byKey:     map[string]*named{},
	}
	funcNames := map[string]bool{"SERVER": true, "TOOLS": true, "__call": true}
	for i, t := range sorted {
		if i > 0 && sorted[i-1].Name == t.Name {
			return nil, fmt.Errorf("duplicate tool name %q", t.Name)
		}
		id := Identifier(t.Name)
		for n := 2; funcNames[id]; n++ {
			id = Identifier(t.Name) + "_" + strconv.Itoa(n)
		}
		funcNames[id] = true
		g.tools = append(g.tools, &toolPlan{tool: t, id: id})
	}
	// Tool type names first, so that definitions never take them.
	for _, tp := range g.tools {
		base := pascal(tp.tool.Name)
		b := base
		for n := 2; g.typeNames[b+"Input"] || g.typeNames[b+"Output"]; n++ {
			b = base + strconv.Itoa(n)
		}
		tp.in = g.newNamed(b + "Input")
		if len(bytes.TrimSpace(tp.tool.OutputSchema)) > 0 && !bytes.Equal(bytes.TrimSpace(tp.tool.OutputSchema), []byte("null")) {
			tp.out = g.newNamed(b + "Output")
		} else {
			g.typeNames[b+"Output"] = true
		}
	}
	for ti, tp := range g.tools {
		in, err := decode(tp.tool.InputSchema)
		if err != nil {
			return nil, fmt.Errorf("tool %q: input schema: %w", tp.tool.Name, err)
		}
		if in == nil {
			in = map[string]any{"type": "object"}
		}
		g.convertRoot(tp, tp.in, in, fmt.Sprintf("%d/in", ti))
		if tp.out != nil {
			out, err := decode(tp.tool.OutputSchema)
			if err != nil {
				return nil, fmt.Errorf("tool %q: output schema: %w", tp.tool.Name, err)
			}
			g.convertRoot(tp, tp.out, out, fmt.Sprintf("%d/out", ti))
		}
	}
	g.breakCycles()
	return g, nil
}

func decode(raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("data after the schema")
	}
	return v, nil
}

func (g *gen) newNamed(name string) *named {
	g.typeNames[name] = true
	g.seq++
	return &named{name: name, seq: g.seq}
}

// uniqueType returns base, or base2, base3, ... whichever is free.
func (g *gen) uniqueType(base string) string {
	name := base
	for n := 2; g.typeNames[name]; n++ {
		name = base + strconv.Itoa(n)
	}
	return name
}

func (g *gen) convertRoot(tp *toolPlan, n *named, root any, rootID string) {
	c := &conv{g: g, tp: tp, root: root, rootNamed: n, rootID: rootID, refs: map[string]*named{}}
	n.doc = schemaDoc(root, false)
	n.body = c.schema(root, 0)
}

// funcDoc is the JSDoc of a tool's function. The compact form, for
// declarations, leaves out a title when there is a description and puts the
// original tool name on the last line.
func (t *toolPlan) funcDoc(compact bool) []string {
	var lines []string
	if t.tool.Title != "" && t.tool.Title != t.tool.Name && !(compact && strings.TrimSpace(t.tool.Description) != "") {
		lines = append(lines, t.tool.Title)
	}
	d := strings.TrimSpace(t.tool.Description)
	if compact {
		d = toolSummary(d)
	}
	if d != "" {
		if len(lines) > 0 {
			lines = append(lines, "")
		}
		lines = append(lines, strings.Split(d, "\n")...)
	}
	if t.id != t.tool.Name {
		note := "MCP tool " + jsString(t.tool.Name)
		switch {
		case compact && len(lines) > 0:
			lines[len(lines)-1] += " (" + note + ")"
		case len(lines) > 0:
			lines = append(lines, "", note)
		default:
			lines = append(lines, note)
		}
	}
	return lines
}

// argsOptional reports whether the tool can be called without arguments.
func (t *toolPlan) argsOptional() bool {
	return allOptional(t.in.body, map[*named]bool{})
}

func allOptional(t *ts, seen map[*named]bool) bool {
	switch t.kind {
	case kObject:
		for _, p := range t.props {
			if !p.optional {
				return false
			}
		}
		return true
	case kRef:
		if seen[t.ref] {
			return false
		}
		seen[t.ref] = true
		return allOptional(t.ref.body, seen)
	case kInter:
		for _, m := range t.members {
			if !allOptional(m, seen) {
				return false
			}
		}
		return true
	case kPrim:
		return t.name == "unknown"
	}
	return false
}

// pascal maps a name to a PascalCase type name: "read_text_file" ->
// "ReadTextFile", "get-env" -> "GetEnv", "readFile" -> "ReadFile".
func pascal(name string) string {
	var b strings.Builder
	up := true
	for _, r := range name {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			if up && r >= 'a' && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			up = false
		} else {
			up = true
		}
	}
	s := b.String()
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		s = "T" + s
	}
	return s
}

// breakCycles replaces references that would make a type alias refer to
// itself without an object or array in between (type A = B | string;
// type B = A), which TypeScript rejects, with unknown.
func (g *gen) breakCycles() {
	var all []*named
	seen := map[*named]bool{}
	add := func(n *named) {
		if n != nil && !seen[n] {
			seen[n] = true
			all = append(all, n)
		}
	}
	for _, tp := range g.tools {
		for _, d := range tp.defs {
			add(d)
		}
		add(tp.in)
		add(tp.out)
	}
	slices.SortFunc(all, func(a, b *named) int { return a.seq - b.seq })
	for _, n := range all {
		eachDirectRef(&n.body, func(slot **ts) {
			if reaches((*slot).ref, n, map[*named]bool{}) {
				*slot = prim("unknown")
			}
		})
		n.body = normalize(n.body)
	}
}

// reaches reports whether from reaches to through direct references.
func reaches(from, to *named, seen map[*named]bool) bool {
	if from == to {
		return true
	}
	if seen[from] {
		return false
	}
	seen[from] = true
	found := false
	eachDirectRef(&from.body, func(slot **ts) {
		if !found && reaches((*slot).ref, to, seen) {
			found = true
		}
	})
	return found
}

// eachDirectRef calls f for every reference in t that is not inside an
// object or array type.
func eachDirectRef(t **ts, f func(slot **ts)) {
	switch (*t).kind {
	case kRef:
		f(t)
	case kUnion, kInter:
		for i := range (*t).members {
			eachDirectRef(&(*t).members[i], f)
		}
	}
}
