package conductor

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/tsgen"
)

// moduleCache keeps generated module sources and what was last written
// where, so a run that imports ./mcp/<server> neither regenerates the module
// (7 ms for a 200-tool server) nor reads the file back to compare.
type moduleCache struct {
	mu   sync.Mutex
	src  map[string]string // tool-set key -> module source
	file map[string]string // path -> source last written there
	// inUse maps a conversation directory to the versioned module each of
	// its mcp/<server>.ts paths resolves to now: what its pooled sandboxes
	// preload.
	inUse map[string]map[string]string
}

const maxCachedModules = 256

// moduleSource returns the module of server's tools that role may call,
// generated once per tool set. The key is the identity of the hub's tool
// values, which are replaced, never modified, when a server lists again.
func (c *Conductor) moduleSource(server string, role map[string]config.ToolPolicy) (string, error) {
	var key strings.Builder
	key.WriteString(server)
	n := 0
	for _, t := range c.exposedTools(role) {
		if t.Server == server {
			fmt.Fprintf(&key, "|%p", t.Tool)
			n++
		}
	}
	if n > 0 {
		c.mods.mu.Lock()
		src, ok := c.mods.src[key.String()]
		c.mods.mu.Unlock()
		if ok {
			return src, nil
		}
	}
	tools, err := c.serverTools(server, role) // also says why a server is unusable
	if err != nil {
		return "", err
	}
	src, err := tsgen.Module(server, tools)
	if err != nil {
		return "", err
	}
	if n > 0 {
		c.mods.mu.Lock()
		if c.mods.src == nil || len(c.mods.src) >= maxCachedModules {
			c.mods.src = map[string]string{}
		}
		c.mods.src[key.String()] = src
		c.mods.mu.Unlock()
	}
	return src, nil
}

// written reports whether path holds src as last written (and still exists).
func (m *moduleCache) written(path, src string) bool {
	m.mu.Lock()
	last, ok := m.file[path]
	m.mu.Unlock()
	if !ok || last != src {
		return false
	}
	_, err := os.Stat(path)
	return err == nil
}

func (m *moduleCache) wrote(path, src string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.file == nil || len(m.file) >= 4*maxCachedModules {
		m.file = map[string]string{}
	}
	m.file[path] = src
}

// use records that conversation dir imports path as vpath.
func (m *moduleCache) use(dir, path, vpath string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inUse[dir][path] == vpath {
		return
	}
	if m.inUse == nil || len(m.inUse) >= 16*maxCachedModules {
		m.inUse = map[string]map[string]string{}
	}
	if m.inUse[dir] == nil {
		m.inUse[dir] = map[string]string{}
	}
	m.inUse[dir][path] = vpath
}

// current is the versioned module path runs of dir import for path, or "".
func (m *moduleCache) current(dir, path string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inUse[dir][path]
}

// maxPreload bounds the modules a pooled sandbox loads ahead.
const maxPreload = 8

// preload lists the versioned modules runs of dir imported lately, for
// the sandbox pool to load into the conversation's spares.
func (m *moduleCache) preload(dir string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, v := range m.inUse[dir] {
		out = append(out, v)
	}
	slices.Sort(out)
	return out[:min(len(out), maxPreload)]
}
