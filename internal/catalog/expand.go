package catalog

import (
	"slices"
	"strings"
)

// qterm is one weighted query term.
type qterm struct {
	term   string
	weight float32
}

// capabilities are small groups of words that name the same generic
// capability in requests and in tool descriptions. Requests rarely say the
// tool's word ("save the results" needs write_file, "what's in this folder"
// needs list_directory), so a query word pulls in the other words of its
// groups at a lower weight. The groups describe verbs and objects common to
// MCP tools in general (files, web, messages, data, memory), written from
// the vocabulary of tool catalogs, not from the evaluation queries.
var capabilities = [][]string{
	// files and storage
	{"write", "save", "store", "persist", "export", "dump", "output", "record", "keep"},
	{"read", "open", "load", "view", "show", "display", "content", "contents", "see", "look", "print", "cat"},
	{"list", "listing", "enumerate", "browse", "contents", "ls", "show", "inventory"},
	{"folder", "directory", "dir", "path", "tree"},
	{"file", "files", "document", "doc", "docs"},
	{"delete", "remove", "erase", "drop", "destroy", "clear", "purge", "discard"},
	{"edit", "modify", "change", "update", "alter", "replace", "patch", "fix", "amend"},
	{"create", "make", "new", "add", "generate", "build", "insert"},
	{"move", "rename", "relocate", "mv"},
	{"copy", "duplicate", "clone", "cp"},
	{"compress", "zip", "gzip", "archive", "pack"},
	{"metadata", "info", "information", "details", "stat", "properties", "size"},
	// finding and knowing
	{"search", "find", "lookup", "query", "locate", "seek", "discover", "look"},
	{"remember", "memorize", "memory", "note", "notes", "knowledge", "fact", "facts", "observation"},
	{"remember", "memorize", "store", "add", "create", "record"},
	{"know", "recall", "knowledge", "memory", "remember", "search"},
	{"forget", "delete", "remove", "memory"},
	{"person", "people", "entity", "entities", "someone", "contact", "company", "organization"},
	{"relation", "relationship", "connection", "works", "manager", "colleague", "friend", "boss", "employee", "married", "member"},
	// web
	{"web", "website", "site", "page", "webpage", "url", "link", "browser", "internet", "online"},
	{"open", "visit", "navigate", "browse", "go"},
	{"download", "fetch", "retrieve", "get", "grab", "scrape", "crawl"},
	{"screenshot", "capture", "snapshot"},
	{"click", "press", "tap"},
	// communication
	{"send", "email", "mail", "message", "notify", "post", "reply"},
	{"chat", "message", "conversation", "channel"},
	{"schedule", "calendar", "event", "meeting", "appointment", "book", "booking", "reserve"},
	// data and compute
	{"run", "execute", "launch", "start", "invoke"},
	{"calculate", "compute", "sum", "add", "total", "math", "arithmetic"},
	{"image", "picture", "photo", "pic", "img", "graphic"},
	{"translate", "translation", "language"},
	{"summarize", "summary", "digest", "tldr"},
	{"analyze", "analysis", "inspect", "examine", "evaluate"},
	{"convert", "transform", "format"},
	{"database", "db", "sql", "table", "record", "row"},
	{"environment", "env", "variable", "variables", "config", "configuration", "setting", "settings"},
	{"log", "logs", "logging"},
	{"repeat", "echo", "return", "back"},
	// shopping and everyday services
	{"buy", "purchase", "shop", "shopping", "product", "products", "price", "order", "deal", "deals", "discount", "coupon"},
	{"news", "headline", "headlines", "article", "articles"},
	{"weather", "forecast", "temperature", "rain"},
	{"stock", "stocks", "finance", "financial", "market", "invest", "investment"},
	{"travel", "trip", "flight", "hotel", "vacation"},
	{"job", "jobs", "career", "hire", "hiring", "resume"},
	{"recipe", "cook", "cooking", "food", "meal"},
	{"music", "song", "songs", "playlist", "audio"},
	{"video", "movie", "film", "watch"},
	{"learn", "course", "courses", "tutorial", "study", "education"},
	{"paper", "papers", "research", "academic", "scholar", "citation"},
	{"code", "repository", "repo", "github", "git"},
}

// expansionWeight is the weight of a capability word relative to a word
// the request actually used.
const expansionWeight = 0.25

// expansions maps a stemmed word to the stemmed words of its groups.
var expansions = func() map[string][]string {
	m := map[string]map[string]bool{}
	for _, g := range capabilities {
		var stems []string
		for _, w := range g {
			stems = append(stems, stemWord(strings.ToLower(w)))
		}
		for _, s := range stems {
			if m[s] == nil {
				m[s] = map[string]bool{}
			}
			for _, o := range stems {
				if o != s {
					m[s][o] = true
				}
			}
		}
	}
	out := make(map[string][]string, len(m))
	for k, set := range m {
		for o := range set {
			out[k] = append(out[k], o)
		}
		slices.Sort(out[k])
	}
	return out
}()

// queryTerms analyzes a query: its own terms at weight 1 (summed when
// repeated, up to 2) and capability expansions at expansionWeight (never
// above a term the query used itself).
func queryTerms(q string, expW float32) []qterm {
	toks := tokenize(q, nil)
	// A file name or a path in the request means files are involved even
	// when the word "file" is absent ("open notes.txt", "clean up /tmp").
	// A URL means a web page ("read https://go.dev/doc").
	var file, url bool
	for _, f := range strings.Fields(q) {
		f = strings.Trim(f, `"'()[]{},;:!?`)
		switch {
		case strings.Contains(f, "://") || strings.HasPrefix(strings.ToLower(f), "www."):
			url = true
		case looksLikeFile(f):
			file = true
		}
	}
	if file {
		toks = append(toks, stemWord("file"))
	}
	if url {
		toks = append(toks, "url", stemWord("page"), "web")
	}
	w := map[string]float32{}
	var order []string
	for _, t := range toks {
		if _, ok := w[t]; !ok {
			order = append(order, t)
		}
		w[t] = min(w[t]+1, 2)
	}
	own := len(order)
	if expW > 0 {
		for _, t := range order[:own] {
			for _, e := range expansions[t] {
				if _, ok := w[e]; !ok {
					order = append(order, e)
					w[e] = expW
				} else if w[e] < expW {
					w[e] = expW
				}
			}
		}
	}
	out := make([]qterm, len(order))
	for i, t := range order {
		out[i] = qterm{t, w[t]}
	}
	return out
}

// looksLikeFile reports whether a request word is a file name or a path:
// "notes.txt", "./src/main.go", "/tmp/x", "C:\\data".
func looksLikeFile(w string) bool {
	if strings.HasPrefix(w, "/") || strings.HasPrefix(w, "./") || strings.HasPrefix(w, "~/") || strings.Contains(w, `:\\`) {
		return len(w) > 2
	}
	i := strings.LastIndexByte(w, '.')
	if i <= 0 || i == len(w)-1 {
		return false
	}
	ext := strings.ToLower(w[i+1:])
	return fileExts[ext]
}

var fileExts = func() map[string]bool {
	m := map[string]bool{}
	for _, e := range strings.Fields(`txt md markdown json jsonl csv tsv yaml yml toml xml html htm css js ts tsx jsx py go rs java
		c h cpp rb php sh sql log ini cfg conf pdf doc docx xls xlsx ppt pptx png jpg jpeg gif svg webp mp3 wav mp4 zip gz tar`) {
		m[e] = true
	}
	return m
}()
