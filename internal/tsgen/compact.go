package tsgen

import (
	"regexp"
	"strings"
)

// Declarations are read by a model, which pays for every token: their docs
// keep what helps to write a correct call and drop what repeats the types or
// other text. The limits below are in bytes of the description text.
const (
	// toolDocMax bounds a tool's description: the first paragraph, cut
	// after the last sentence that fits.
	toolDocMax = 400
	// propDocMax bounds a property's description, cut the same way.
	propDocMax = 300
)

// compactIndent indents a level of declarations. o200k_base folds a newline
// and one space into the next word's token, so one space per level costs
// nothing where two spaces cost a token per line (a tab, most of one).
const compactIndent = " "

// compactDoc turns the JSDoc lines of a property (description lines, then
// "@tag value" lines from schemaDoc) into at most one line: the description
// with its white space collapsed and cut to propDocMax, then the tags, less
// a "@default" the description already states.
func compactDoc(lines []string) []string {
	var desc, tags []string
	for _, l := range lines {
		if strings.HasPrefix(l, "@") {
			tags = append(tags, l)
		} else {
			desc = append(desc, l)
		}
	}
	text := clip(collapse(strings.Join(desc, " ")), propDocMax)
	parts := []string{}
	if text != "" {
		parts = append(parts, text)
	}
	for _, t := range tags {
		if v, ok := strings.CutPrefix(t, "@default "); ok && statesDefault(text, v) {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return nil
	}
	return []string{strings.Join(parts, " ")}
}

// statesDefault reports whether a description already gives the default
// value v (JSON): "(default: 30)", "Defaults to \\"name\\"", "default is false".
func statesDefault(desc, v string) bool {
	lower := strings.ToLower(desc)
	i := strings.Index(lower, "default")
	if i < 0 {
		return false
	}
	after := lower[i:]
	return strings.Contains(after, strings.ToLower(v)) || strings.Contains(after, strings.ToLower(strings.Trim(v, `"`)))
}

var spaces = regexp.MustCompile(`\s+`)

func collapse(s string) string { return strings.TrimSpace(spaces.ReplaceAllString(s, " ")) }

// clip cuts s after the last sentence end (". ", "! ", "? ") that leaves at
// most max bytes, or, when the first sentence is longer, after the last word
// that fits, marking the cut with "…".
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	best := -1
	for i := 0; i+1 < len(s) && i < max; i++ {
		if (s[i] == '.' || s[i] == '!' || s[i] == '?') && s[i+1] == ' ' {
			best = i + 1
		}
	}
	if best > 0 {
		return s[:best]
	}
	cut := strings.LastIndexByte(s[:max], ' ')
	if cut <= 0 {
		cut = max
		for cut > 0 && s[cut]&0xC0 == 0x80 { // not inside a UTF-8 sequence
			cut--
		}
	}
	return strings.TrimRight(s[:cut], " ,;:") + "…"
}

// toolSummary is the description of a tool in declarations: its leading
// prose (up to the first heading, list, code block, emphasized label or line
// that introduces one with ':'), white space collapsed, cut to toolDocMax.
// What follows is mostly examples and advice for MCP clients; the module
// file keeps the whole text.
func toolSummary(d string) string {
	var prose []string
	for _, l := range strings.Split(strings.TrimSpace(d), "\n") {
		t := strings.TrimSpace(l)
		if t == "" {
			continue
		}
		if strings.HasPrefix(t, "#") || strings.HasPrefix(t, "```") || strings.HasPrefix(t, "- ") ||
			strings.HasPrefix(t, "* ") || strings.HasPrefix(t, "**") || strings.HasPrefix(t, "<") ||
			startsNumbered(t) {
			break
		}
		prose = append(prose, t)
		if strings.HasSuffix(t, ":") {
			break
		}
	}
	s := collapse(strings.Join(prose, " "))
	if strings.HasSuffix(s, ":") {
		// The introduction of what was left out.
		if i := strings.LastIndexAny(s[:len(s)-1], ".!?"); i > 0 {
			s = s[:i+1]
		}
	}
	return clip(s, toolDocMax)
}

// startsNumbered reports whether t starts like "1. " or "2) ".
func startsNumbered(t string) bool {
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	return i > 0 && i+1 < len(t) && (t[i] == '.' || t[i] == ')') && t[i+1] == ' '
}
