package conductor

import (
	"time"

	"github.com/mcp-conductor/conductor/internal/catalog"
)

// SetSweepInterval sets how often c sweeps idle conversations; call it
// before Start.
func SetSweepInterval(c *Conductor, d time.Duration) { c.sweepInterval = d }

// SetEmbedder replaces the local model with e; call it before Start.
func SetEmbedder(c *Conductor, e catalog.Embedder) { c.embedder = e }
