package conversation

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/mcp-conductor/conductor/internal/catalog"
	"github.com/mcp-conductor/conductor/internal/store"
)

// Weights of the conversation-aware boosts. A tool's score is multiplied by
// 1 + ServerWeight (its server is already imported) + CoUsageWeight × the
// highest co-usage confidence with a loaded or called tool, where the
// confidence of B given A is together(A,B) / (uses(A) + 1): the share of A's
// recorded uses that also used B, shrunk towards 0 when A was seen rarely.
const (
	ServerWeight  = 0.1
	CoUsageWeight = 2.0
	// partnersPerTool is how many partners of each loaded tool are read.
	partnersPerTool = 20
	// SuggestMinTogether is how often two tools must have been used together
	// before LoadToolSpec suggests one with the other.
	SuggestMinTogether = 2
)

// Affinity is what a conversation knows that makes some tools likelier:
// servers it imports and tools often used with the ones it has.
type Affinity struct {
	Servers map[string]bool
	// CoUsage maps a tool to its highest confidence with a tool of the
	// conversation (0..1).
	CoUsage map[string]float64
	// Together maps a tool to the highest raw count behind CoUsage.
	Together map[string]int64
}

// Boost is the multiplier for catalog.SearchOptions.Boost.
func (a *Affinity) Boost(key string) float64 {
	if a == nil {
		return 1
	}
	b := 1.0
	if s, _, ok := strings.Cut(key, "."); ok && a.Servers[s] {
		b += ServerWeight
	}
	return b + CoUsageWeight*a.CoUsage[key]
}

// LoadAffinity reads the co-usage partners of tools (the loaded and called
// tools of a conversation) from st; servers are the conversation's servers.
func LoadAffinity(ctx context.Context, st store.Store, tools, servers []string) (*Affinity, error) {
	a := &Affinity{Servers: map[string]bool{}, CoUsage: map[string]float64{}, Together: map[string]int64{}}
	for _, s := range union(servers, serversOf(tools)) {
		a.Servers[s] = true
	}
	for _, t := range union(nil, tools) {
		u, err := st.CoUsage(ctx, t, partnersPerTool)
		if err != nil {
			return nil, fmt.Errorf("co-usage: %w", err)
		}
		for _, p := range u.Partners {
			conf := float64(p.Together) / float64(u.Uses+1)
			if conf > a.CoUsage[p.Tool] {
				a.CoUsage[p.Tool] = conf
			}
			if p.Together > a.Together[p.Tool] {
				a.Together[p.Tool] = p.Together
			}
		}
	}
	return a, nil
}

// Suggest returns up to n tools often used with the affinity's tools, best
// first, leaving out the tools skip reports (loaded ones).
func (a *Affinity) Suggest(n int, skip func(string) bool) []string {
	var out []string
	for t, c := range a.Together {
		if c >= SuggestMinTogether && (skip == nil || !skip(t)) {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		ci, cj := a.CoUsage[out[i]], a.CoUsage[out[j]]
		if ci != cj {
			return ci > cj
		}
		return out[i] < out[j]
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// Search ranks ix's tools for query in a conversation that has loaded the
// tools loaded reports, boosted by a (nil: no boost). To save the agent
// tokens, loaded tools do not take any of the limit's places: the first
// limit results are tools it does not have yet, followed by the loaded tools
// that ranked among the top limit+len(loaded), marked Loaded and without
// description (the agent holds their declarations already). Tools exclude
// reports (nil: none) are left out of the search itself, so a role's hidden
// tools take no result places.
func Search(ctx context.Context, ix *catalog.Index, query string, limit int, loaded map[string]bool, a *Affinity, exclude func(string) bool) ([]catalog.Result, error) {
	if limit <= 0 {
		limit = 10
	}
	opts := catalog.SearchOptions{
		Limit:   limit + len(loaded),
		Loaded:  func(k string) bool { return loaded[k] },
		Exclude: exclude,
	}
	if a != nil {
		opts.Boost = a.Boost
	}
	res, err := ix.Search(ctx, query, opts)
	if err != nil {
		return nil, err
	}
	fresh := make([]catalog.Result, 0, limit)
	var have []catalog.Result
	for _, r := range res {
		if r.Loaded {
			r.Description = ""
			have = append(have, r)
		} else if len(fresh) < limit {
			fresh = append(fresh, r)
		}
	}
	return append(fresh, have...), nil
}
