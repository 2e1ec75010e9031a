package tsgen

import (
	"strings"
)

// ts is a TypeScript type expression.
type ts struct {
	kind    kind
	name    string // kPrim: keyword; kLit: literal text
	neg     bool   // kLit: negative number
	ref     *named // kRef
	elem    *ts    // kArray
	elems   []tupleElem
	rest    *ts // kTuple: type of further elements, nil if none
	props   []prop
	index   *index // kObject: index signature, nil if none
	members []*ts  // kUnion, kInter
}

type kind int

const (
	kPrim kind = iota
	kLit
	kRef
	kArray
	kTuple
	kObject
	kUnion
	kInter
)

type prop struct {
	name     string
	optional bool
	t        *ts
	doc      []string
}

type index struct {
	t   *ts
	doc []string
}

type tupleElem struct {
	t        *ts
	optional bool
}

func prim(name string) *ts { return &ts{kind: kPrim, name: name} }

func isPrim(t *ts, name string) bool { return t.kind == kPrim && t.name == name }

// union builds A | B | ...: nested unions flattened, duplicates and never
// dropped, unknown absorbing everything.
func union(members ...*ts) *ts { return combine(kUnion, "unknown", "never", members) }

// inter builds A & B & ...: nested intersections flattened, duplicates and
// unknown dropped, never absorbing everything.
func inter(members ...*ts) *ts { return combine(kInter, "never", "unknown", members) }

// combine builds a union or intersection (k) of members: nested ones of the
// same kind are flattened, duplicates and the identity type dropped, and the
// absorbing type swallows the whole.
func combine(k kind, absorbing, identity string, members []*ts) *ts {
	var out []*ts
	seen := map[string]bool{}
	var add func(t *ts) bool
	add = func(t *ts) bool {
		switch {
		case t.kind == k:
			for _, m := range t.members {
				if !add(m) {
					return false
				}
			}
		case isPrim(t, absorbing):
			return false
		case isPrim(t, identity):
		default:
			if key := key(t); !seen[key] {
				seen[key] = true
				out = append(out, t)
			}
		}
		return true
	}
	for _, m := range members {
		if !add(m) {
			return prim(absorbing)
		}
	}
	switch len(out) {
	case 0:
		return prim(identity)
	case 1:
		return out[0]
	}
	return &ts{kind: k, members: out}
}

// normalize rebuilds the unions and intersections at the top of t after
// members were replaced.
func normalize(t *ts) *ts {
	switch t.kind {
	case kUnion:
		ms := make([]*ts, len(t.members))
		for i, m := range t.members {
			ms[i] = normalize(m)
		}
		return union(ms...)
	case kInter:
		ms := make([]*ts, len(t.members))
		for i, m := range t.members {
			ms[i] = normalize(m)
		}
		return inter(ms...)
	}
	return t
}

// key identifies a type for deduplication.
func key(t *ts) string { return printer{}.typ(t, "", precTop) }

// walkRefs calls f for each reference in t, not following references.
func walkRefs(t *ts, f func(*named)) {
	if t == nil {
		return
	}
	switch t.kind {
	case kRef:
		f(t.ref)
	case kArray:
		walkRefs(t.elem, f)
	case kTuple:
		for _, e := range t.elems {
			walkRefs(e.t, f)
		}
		walkRefs(t.rest, f)
	case kObject:
		for _, p := range t.props {
			walkRefs(p.t, f)
		}
		if t.index != nil {
			walkRefs(t.index.t, f)
		}
	case kUnion, kInter:
		for _, m := range t.members {
			walkRefs(m, f)
		}
	}
}

// Precedence of the position a type is printed in.
const (
	precTop   = iota // anything goes
	precInter        // member of an intersection: unions need parentheses
	precArray        // element of T[]: unions and intersections need parentheses
)

// lineMax is the longest object type printed on one line.
const lineMax = 80

// printer prints types. compact prints the JSDoc of properties for a model
// to read (see compactDoc); seen, when not nil, holds the property docs
// already printed, so that a property documented the same way again (an
// output type repeating its input) is printed without its doc.
type printer struct {
	compact bool
	seen    map[string]bool
}

// typ prints t; indent is the indentation of the line t starts on.
func (p printer) typ(t *ts, indent string, prec int) string {
	switch t.kind {
	case kPrim:
		return t.name
	case kLit:
		if t.neg && prec == precArray {
			return "(" + t.name + ")"
		}
		return t.name
	case kRef:
		return t.ref.name
	case kArray:
		return p.typ(t.elem, indent, precArray) + "[]"
	case kTuple:
		var parts []string
		for _, e := range t.elems {
			s := p.typ(e.t, indent, precArray)
			if e.optional {
				s += "?"
			}
			parts = append(parts, s)
		}
		if t.rest != nil {
			parts = append(parts, "..."+p.typ(t.rest, indent, precArray)+"[]")
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case kObject:
		return p.object(t, indent)
	case kUnion, kInter:
		sep, inner, paren := " | ", precInter, prec >= precInter
		if t.kind == kInter {
			sep, inner, paren = " & ", precArray, prec >= precArray
		}
		parts := make([]string, len(t.members))
		for i, m := range t.members {
			parts[i] = p.typ(m, indent, inner)
		}
		s := strings.Join(parts, sep)
		if paren {
			return "(" + s + ")"
		}
		return s
	}
	return "unknown"
}

// doc renders the JSDoc of a property name (or "" for an index signature).
func (p printer) doc(name string, lines []string, indent string) string {
	if p.compact {
		lines = compactDoc(lines)
		// A doc with tags (constraints) stays on every property it belongs to.
		if len(lines) > 0 && p.seen != nil && !strings.Contains(lines[0], " @") && !strings.HasPrefix(lines[0], "@") {
			k := name + "\x00" + lines[0]
			if p.seen[k] {
				return ""
			}
			p.seen[k] = true
		}
	}
	return docBlock(lines, indent)
}

func (p printer) object(t *ts, indent string) string {
	if len(t.props) == 0 && t.index == nil {
		return "Record<string, never>"
	}
	inner := indent + "  "
	if p.compact {
		inner = indent + compactIndent
	}
	// Each member is printed once, at the inner indentation, then joined on
	// one line when nothing is documented and the result is short.
	oneLine := true
	var parts, docs []string
	for _, pr := range t.props {
		d := p.doc(pr.name, pr.doc, inner)
		oneLine = oneLine && d == ""
		docs = append(docs, d)
		parts = append(parts, propName(pr)+": "+p.typ(pr.t, inner, precTop))
	}
	if t.index != nil {
		d := p.doc("", t.index.doc, inner)
		oneLine = oneLine && d == ""
		docs = append(docs, d)
		parts = append(parts, "[key: string]: "+p.typ(t.index.t, inner, precTop))
	}
	if oneLine {
		s := "{ " + strings.Join(parts, "; ") + " }"
		if len(s) <= lineMax && !strings.Contains(s, "\n") {
			return s
		}
	}
	var b strings.Builder
	b.WriteString("{\n")
	for i := range parts {
		b.WriteString(docs[i])
		b.WriteString(inner + parts[i] + ";\n")
	}
	b.WriteString(indent + "}")
	return b.String()
}

func propName(pr prop) string {
	name := pr.name
	if !isIdentName(name) {
		name = jsString(name)
	}
	if pr.optional {
		name += "?"
	}
	return name
}

// namedDecl writes the declaration of a named type: an interface for an
// object type, a type alias otherwise.
func (p printer) namedDecl(b *strings.Builder, n *named, export string) {
	b.WriteString(docBlock(n.doc, ""))
	if n.body.kind == kObject && (len(n.body.props) > 0 || n.body.index != nil) {
		b.WriteString(export + "interface " + n.name + " " + p.object(n.body, "") + "\n")
		return
	}
	b.WriteString(export + "type " + n.name + " = " + p.typ(n.body, "", precTop) + ";\n")
}

// docBlock renders JSDoc lines at indent, or nothing for no lines. A "*/" in
// the text cannot end the comment.
func docBlock(lines []string, indent string) string {
	if len(lines) == 0 {
		return ""
	}
	var esc []string
	for _, l := range lines {
		for _, l := range strings.Split(l, "\n") {
			esc = append(esc, strings.ReplaceAll(strings.TrimRight(l, " \t\r"), "*/", "*\\/"))
		}
	}
	if len(esc) == 1 {
		return indent + "/** " + esc[0] + " */\n"
	}
	var b strings.Builder
	b.WriteString(indent + "/**\n")
	for _, l := range esc {
		if l == "" {
			b.WriteString(indent + " *\n")
		} else {
			b.WriteString(indent + " * " + l + "\n")
		}
	}
	b.WriteString(indent + " */\n")
	return b.String()
}
