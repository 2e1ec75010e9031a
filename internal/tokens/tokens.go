// Package tokens counts tokens the way current OpenAI models do (tiktoken's
// o200k_base), offline: the BPE ranks are embedded in the binary. Benchmarks
// and reports use it to measure what the conductor costs an agent. Any
// package may import it; it imports nothing of the conductor.
package tokens

import (
	"sync"

	"github.com/pkoukk/tiktoken-go"
	loader "github.com/pkoukk/tiktoken-go-loader"
)

// Encoding is the tokenizer Count uses.
const Encoding = "o200k_base"

var enc = sync.OnceValues(func() (*tiktoken.Tiktoken, error) {
	tiktoken.SetBpeLoader(loader.NewOfflineLoader())
	return tiktoken.GetEncoding(Encoding)
})

// Count returns the number of o200k_base tokens of text. Special tokens
// ("<|endoftext|>") count as ordinary text. The first call loads the ranks
// (about 0.5 s); Count is safe for concurrent use. It panics only if the
// embedded ranks are corrupt, which a test catches.
func Count(text string) int {
	e, err := enc()
	if err != nil {
		panic("tokens: load " + Encoding + ": " + err.Error())
	}
	return len(e.EncodeOrdinary(text))
}
