package catalog

import (
	"encoding/json"
	"sort"
)

// Param is one property of a tool's input schema, top-level or nested
// (Path joins the property names with dots: "entities.name").
type Param struct {
	Path        string
	Description string
}

// maxParams bounds what one schema contributes to the index, so a tool with
// a huge generated schema cannot dominate memory or its own field length.
const maxParams = 64

// extractParams walks a JSON Schema's properties (through objects, arrays
// and anyOf/oneOf/allOf) in a deterministic order. A schema that does not
// parse yields no params; a tool is indexed all the same.
func extractParams(raw json.RawMessage) []Param {
	if len(raw) == 0 {
		return nil
	}
	var s map[string]any
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	var out []Param
	walkSchema(s, "", 0, &out)
	return out
}

func walkSchema(s map[string]any, prefix string, depth int, out *[]Param) {
	if depth > 6 || len(*out) >= maxParams {
		return
	}
	if props, ok := s["properties"].(map[string]any); ok {
		names := make([]string, 0, len(props))
		for k := range props {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if len(*out) >= maxParams {
				return
			}
			p, _ := props[k].(map[string]any)
			path := k
			if prefix != "" {
				path = prefix + "." + k
			}
			desc, _ := p["description"].(string)
			if desc == "" {
				desc, _ = p["title"].(string)
			}
			*out = append(*out, Param{Path: path, Description: desc})
			if p != nil {
				walkSchema(p, path, depth+1, out)
			}
		}
	}
	if items, ok := s["items"].(map[string]any); ok {
		walkSchema(items, prefix, depth+1, out)
	}
	for _, key := range []string{"anyOf", "oneOf", "allOf"} {
		if list, ok := s[key].([]any); ok {
			for _, sub := range list {
				if m, ok := sub.(map[string]any); ok {
					walkSchema(m, prefix, depth+1, out)
				}
			}
		}
	}
}
