package conductor

// The local model tells the catalog its own token count, so long tool texts
// are split into parts that fit its 128-token window instead of being cut.
func (e modelEmbedder) MaxTokens() int             { return e.m.MaxTokens() }
func (e modelEmbedder) TokenCount(text string) int { return e.m.TokenCount(text) }
