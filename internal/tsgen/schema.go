package tsgen

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// maxDepth bounds the nesting of inline types; deeper schemas become unknown.
const maxDepth = 64

// conv converts the schemas under one root (a tool's input or output schema).
type conv struct {
	g         *gen
	tp        *toolPlan
	root      any
	rootNamed *named
	rootID    string            // distinguishes roots in sharing keys
	refs      map[string]*named // JSON pointer -> named type, within this root
}

// schema converts one JSON Schema (draft-07 or 2020-12) to a type.
func (c *conv) schema(s any, depth int) *ts {
	if depth > maxDepth {
		return prim("unknown")
	}
	switch v := s.(type) {
	case bool:
		if v {
			return prim("unknown")
		}
		return prim("never")
	case map[string]any:
		return c.object(v, depth)
	}
	return prim("unknown")
}

func (c *conv) object(m map[string]any, depth int) *ts {
	var parts []*ts // intersected
	if ref, ok := m["$ref"].(string); ok {
		parts = append(parts, c.ref(ref))
	}
	switch {
	case has(m, "const"):
		parts = append(parts, literal(m["const"], depth))
	case has(m, "enum"):
		var u []*ts
		if vals, ok := m["enum"].([]any); ok {
			for _, v := range vals {
				u = append(u, literal(v, depth))
			}
		}
		if m["nullable"] == true {
			u = append(u, prim("null"))
		}
		parts = append(parts, union(u...))
	default:
		if t := c.typed(m, depth); t != nil {
			parts = append(parts, t)
		}
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		if list, ok := m[key].([]any); ok {
			var u []*ts
			for _, s := range list {
				u = append(u, c.schema(s, depth+1))
			}
			parts = append(parts, union(u...))
		}
	}
	if list, ok := m["allOf"].([]any); ok {
		for _, s := range list {
			parts = append(parts, c.schema(s, depth+1))
		}
	}
	return inter(parts...)
}

// typed converts the "type" keyword with the keywords of each type; nil when
// the schema constrains no type.
func (c *conv) typed(m map[string]any, depth int) *ts {
	var types []string
	switch t := m["type"].(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok {
				types = append(types, s)
			}
		}
		if len(types) == 0 {
			return prim("never")
		}
	default:
		switch {
		case has(m, "properties") || has(m, "additionalProperties") || has(m, "patternProperties") || has(m, "required"):
			types = []string{"object"}
		case has(m, "items") || has(m, "prefixItems"):
			types = []string{"array"}
		default:
			if m["nullable"] == true {
				return nil // "nullable" alone allows anything
			}
			return nil
		}
	}
	var u []*ts
	for _, t := range types {
		switch t {
		case "string", "number", "boolean", "null":
			u = append(u, prim(t))
		case "integer":
			u = append(u, prim("number"))
		case "object":
			u = append(u, c.objectType(m, depth))
		case "array":
			u = append(u, c.arrayType(m, depth))
		default:
			u = append(u, prim("unknown"))
		}
	}
	if m["nullable"] == true {
		u = append(u, prim("null"))
	}
	return union(u...)
}

func (c *conv) objectType(m map[string]any, depth int) *ts {
	t := &ts{kind: kObject}
	props, _ := m["properties"].(map[string]any)
	required := map[string]bool{}
	if list, ok := m["required"].([]any); ok {
		for _, r := range list {
			if s, ok := r.(string); ok {
				required[s] = true
			}
		}
	}
	var indexTypes []*ts
	for _, name := range sortedKeys(props) {
		sub := props[name]
		t.props = append(t.props, prop{
			name:     name,
			optional: !required[name],
			t:        c.schema(sub, depth+1),
			doc:      schemaDoc(sub, true),
		})
	}
	for _, name := range sortedKeys(required) {
		if _, ok := props[name]; !ok {
			t.props = append(t.props, prop{name: name, t: prim("unknown")})
		}
	}
	var indexDoc []string
	if pp, ok := m["patternProperties"].(map[string]any); ok {
		for _, pat := range sortedKeys(pp) {
			indexTypes = append(indexTypes, c.schema(pp[pat], depth+1))
			indexDoc = append(indexDoc, "Keys matching /"+pat+"/"+docSuffix(schemaDoc(pp[pat], false)))
		}
	}
	switch ap := m["additionalProperties"].(type) {
	case nil:
		// Absent: other keys are allowed by JSON Schema, but an object whose
		// properties are declared is typed closed to catch misspelled keys
		// (and a oneOf branch that only says "required" stays closed).
		if !has(m, "properties") && !has(m, "patternProperties") && !has(m, "required") {
			indexTypes = append(indexTypes, prim("unknown"))
		}
	case bool:
		if ap {
			indexTypes = append(indexTypes, prim("unknown"))
		}
	default:
		indexTypes = append(indexTypes, c.schema(ap, depth+1))
		if len(indexDoc) > 0 {
			indexDoc = append(indexDoc, "Other keys"+docSuffix(schemaDoc(ap, false)))
		} else {
			indexDoc = schemaDoc(ap, false)
		}
	}
	if len(indexTypes) > 0 {
		// Every property must fit the index signature. Property types are
		// repeated there only when small: nested objects would double the
		// output at every level.
		members := slices.Clone(indexTypes)
		optional := false
		for _, p := range t.props {
			if !small(p.t) {
				members = append(members, prim("unknown"))
			}
			members = append(members, p.t)
			optional = optional || p.optional
		}
		if optional {
			members = append(members, prim("undefined"))
		}
		t.index = &index{t: union(members...), doc: indexDoc}
	}
	return t
}

// small reports whether t is a type that costs little to repeat: no object
// or tuple types in it.
func small(t *ts) bool {
	switch t.kind {
	case kPrim, kLit, kRef:
		return true
	case kArray:
		return small(t.elem)
	case kUnion, kInter:
		for _, m := range t.members {
			if !small(m) {
				return false
			}
		}
		return true
	}
	return false
}

func docSuffix(doc []string) string {
	if len(doc) == 0 {
		return ""
	}
	return ": " + strings.Join(doc, " ")
}

func (c *conv) arrayType(m map[string]any, depth int) *ts {
	var elems []any
	var rest any = true // schema of the elements after the tuple
	isTuple := false
	if p, ok := m["prefixItems"].([]any); ok { // 2020-12
		elems, isTuple = p, true
		if it, ok := m["items"]; ok {
			rest = it
		}
	} else if p, ok := m["items"].([]any); ok { // draft-07
		elems, isTuple = p, true
		if ai, ok := m["additionalItems"]; ok {
			rest = ai
		}
	}
	if !isTuple {
		it, ok := m["items"]
		if !ok {
			it = true
		}
		return &ts{kind: kArray, elem: c.schema(it, depth+1)}
	}
	minItems := 0
	if n, ok := m["minItems"].(json.Number); ok {
		if v, err := n.Int64(); err == nil && v > 0 {
			minItems = int(min(v, int64(len(elems))))
		}
	}
	t := &ts{kind: kTuple}
	for i, e := range elems {
		t.elems = append(t.elems, tupleElem{t: c.schema(e, depth+1), optional: i >= minItems})
	}
	if r := c.schema(rest, depth+1); !(r.kind == kPrim && r.name == "never") {
		t.rest = r
	}
	return t
}

// ref converts a "$ref". Local JSON pointers ("#", "#/$defs/X",
// "#/definitions/X", any "#/..." into the root) become named types, which
// makes recursion work; anything else is unknown.
func (c *conv) ref(ref string) *ts {
	ptr, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return prim("unknown")
	}
	if ptr == "" {
		c.rootNamed.selfRef = true
		return &ts{kind: kRef, ref: c.rootNamed}
	}
	if n, ok := c.refs[ptr]; ok {
		return &ts{kind: kRef, ref: n}
	}
	target, ok := resolve(c.root, ptr)
	if !ok {
		return prim("unknown")
	}
	key := c.shareKey(ptr)
	if n, ok := c.g.byKey[key]; ok {
		c.refs[ptr] = n
		return &ts{kind: kRef, ref: n}
	}
	segs := strings.Split(ptr, "/")
	n := c.g.newNamed(c.g.uniqueType(pascal(unescapeSeg(segs[len(segs)-1]))))
	c.g.byKey[key] = n
	c.refs[ptr] = n
	c.tp.defs = append(c.tp.defs, n)
	n.doc = schemaDoc(target, false)
	n.body = c.schema(target, 0)
	return &ts{kind: kRef, ref: n}
}

// shareKey identifies the type at ptr by the JSON of everything it depends
// on, so equal definitions in several tools share one named type.
func (c *conv) shareKey(ptr string) string {
	seen := map[string]bool{ptr: true}
	queue := []string{ptr}
	var key []any
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == "" {
			key = append(key, "#root:"+c.rootID)
			continue
		}
		target, _ := resolve(c.root, p)
		key = append(key, p, target)
		walkJSON(target, func(m map[string]any) {
			if r, ok := m["$ref"].(string); ok {
				if q, ok := strings.CutPrefix(r, "#"); ok && !seen[q] {
					seen[q] = true
					queue = append(queue, q)
				}
			}
		})
	}
	b, _ := json.Marshal(key) // maps marshal with sorted keys
	return string(b)
}

func walkJSON(v any, f func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(v)
		for _, k := range sortedKeys(v) {
			walkJSON(v[k], f)
		}
	case []any:
		for _, x := range v {
			walkJSON(x, f)
		}
	}
}

// resolve follows a JSON pointer (RFC 6901, URI fragment form) from root.
func resolve(root any, ptr string) (any, bool) {
	if !strings.HasPrefix(ptr, "/") {
		return nil, false
	}
	cur := root
	for _, seg := range strings.Split(ptr[1:], "/") {
		seg = unescapeSeg(seg)
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[seg]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func unescapeSeg(seg string) string {
	if s, err := url.PathUnescape(seg); err == nil {
		seg = s
	}
	return strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
}

// literal converts a JSON value (from "const" or "enum") to a literal type.
func literal(v any, depth int) *ts {
	if depth > maxDepth {
		return prim("unknown")
	}
	switch v := v.(type) {
	case nil:
		return prim("null")
	case bool:
		return &ts{kind: kLit, name: strconv.FormatBool(v)}
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || f != f || f > 1e300 || f < -1e300 {
			return prim("number")
		}
		s := strconv.FormatFloat(f, 'g', -1, 64)
		if strings.HasPrefix(s, "-") {
			return &ts{kind: kLit, name: s, neg: true}
		}
		return &ts{kind: kLit, name: s}
	case string:
		return &ts{kind: kLit, name: jsString(v)}
	case []any:
		t := &ts{kind: kTuple}
		for _, x := range v {
			t.elems = append(t.elems, tupleElem{t: literal(x, depth+1)})
		}
		return t
	case map[string]any:
		t := &ts{kind: kObject}
		for _, k := range sortedKeys(v) {
			t.props = append(t.props, prop{name: k, t: literal(v[k], depth+1)})
		}
		return t
	}
	return prim("unknown")
}

// schemaDoc collects the JSDoc lines of a schema: its description (or title)
// and what the type does not say: default, format, integer, bounds, pattern,
// deprecation. forProp adds nothing else; the flag is kept for callers that
// document named types and properties alike.
func schemaDoc(s any, forProp bool) []string {
	_ = forProp
	m, ok := s.(map[string]any)
	if !ok {
		return nil
	}
	var lines []string
	text, _ := m["description"].(string)
	if strings.TrimSpace(text) == "" {
		text, _ = m["title"].(string)
	}
	if text = strings.TrimSpace(text); text != "" {
		lines = strings.Split(text, "\n")
	}
	var tags []string
	if m["type"] == "integer" || slices.Contains(asSlice(m["type"]), any("integer")) {
		tags = append(tags, "integer")
	}
	if f, ok := m["format"].(string); ok {
		tags = append(tags, "format "+f)
	}
	for _, k := range []string{"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "multipleOf",
		"minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties"} {
		if v, ok := m[k]; ok {
			if _, isBool := v.(bool); isBool && v != true {
				continue
			}
			tags = append(tags, fmt.Sprintf("%s %s", k, compactJSON(v)))
		}
	}
	if p, ok := m["pattern"].(string); ok {
		tags = append(tags, "pattern "+p)
	}
	if v, ok := m["default"]; ok {
		tags = append(tags, "default "+compactJSON(v))
	}
	if m["deprecated"] == true {
		tags = append(tags, "deprecated")
	}
	for _, t := range tags {
		lines = append(lines, "@"+t)
	}
	return lines
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func compactJSON(v any) string {
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "?"
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func has(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
