package embed

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"unicode/utf16"

	"golang.org/x/text/unicode/norm"
)

// separator marks the start of a word, as in SentencePiece.
const separator = "\u2581"

// reservedSymbols is the number of vocabulary entries (unknown, <s>, </s>,
// three extra ids) that never match text.
const reservedSymbols = 6

// tokenizer is a port of the USE tokenizer of TF.js
// (@tensorflow-models/universal-sentence-encoder, copied by
// @energetic-ai/embeddings): a simplified SentencePiece unigram model that
// finds the best-scoring split with a Viterbi pass over the vocabulary's
// log probabilities. It reproduces the original's quirks on purpose so that
// token ids match TF.js exactly:
//   - NFKC, then "▁" before the text and in place of every ASCII space
//     (tabs and newlines stay as characters, usually unknown);
//   - a character no piece starts with becomes the unknown id 0 with score
//     0, and runs of unknown ids collapse into one;
//   - a null score in vocab.json counts as 0, and a position whose best
//     score is exactly 0 takes any later candidate;
//   - ties go to the candidate that starts later (the shorter piece);
//   - of duplicate pieces the last one wins.
//
// A tokenizer is immutable after newTokenizer and safe for concurrent use.
type tokenizer struct {
	root trieNode
	// pieceLen is the length of each piece in UTF-16 code units, which is
	// what the original steps back by when it reads the best path.
	pieceLen []int
}

type trieNode struct {
	children map[rune]*trieNode
	end      bool
	score    float64
	index    int
	runes    int
}

func readVocab(path string) ([][2]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %v", ErrModelMissing, err)
		}
		return nil, err
	}
	var vocab [][2]any
	if err := json.Unmarshal(raw, &vocab); err != nil {
		return nil, fmt.Errorf("vocab.json: %w", err)
	}
	return vocab, nil
}

func newTokenizer(vocab [][2]any) (*tokenizer, error) {
	t := &tokenizer{pieceLen: make([]int, len(vocab))}
	for i, entry := range vocab {
		piece, ok := entry[0].(string)
		if !ok {
			return nil, fmt.Errorf("vocab.json: entry %d: piece is %T, want string", i, entry[0])
		}
		var score float64
		switch s := entry[1].(type) {
		case float64:
			score = s
		case nil:
		default:
			return nil, fmt.Errorf("vocab.json: entry %d: score is %T, want number", i, entry[1])
		}
		t.pieceLen[i] = len(utf16.Encode([]rune(piece)))
		if i < reservedSymbols {
			continue
		}
		n := &t.root
		runes := 0
		for _, r := range piece {
			if n.children == nil {
				n.children = make(map[rune]*trieNode)
			}
			c := n.children[r]
			if c == nil {
				c = &trieNode{}
				n.children[r] = c
			}
			n = c
			runes++
		}
		if runes > 0 {
			n.end, n.score, n.index, n.runes = true, score, i, runes
		}
	}
	return t, nil
}

// prepare normalises text as the original's processInput does.
func prepare(text string) []rune {
	s := norm.NFKC.String(text)
	if s == "" {
		return nil
	}
	return []rune(separator + strings.ReplaceAll(s, " ", separator))
}

// candidate is a piece ending at some position of the text.
type candidate struct {
	start int
	score float64
	index int
}

// encode returns the token ids of text, all of them (the model reads the
// first maxTokens).
func (t *tokenizer) encode(text string) []int {
	symbols := prepare(text)
	n := len(symbols)
	if n == 0 {
		return nil
	}
	// ends[e] lists the pieces that end at e, by ascending start.
	ends := make([][]candidate, n+1)
	for i := range n {
		node := t.root.children[symbols[i]]
		found := false
		for j := i; j < n && node != nil; j++ {
			if node.end {
				ends[i+node.runes] = append(ends[i+node.runes], candidate{i, node.score, node.index})
				found = true
			}
			if j+1 < n {
				node = node.children[symbols[j+1]]
			} else {
				node = nil
			}
		}
		if !found {
			ends[i+1] = append(ends[i+1], candidate{i, 0, 0})
		}
	}
	best := make([]float64, n+1)
	words := make([]int, n+1)
	for e := 0; e <= n; e++ {
		for _, c := range ends[e] {
			score := c.score + best[c.start]
			if best[e] == 0 || score >= best[e] {
				best[e] = score
				words[e] = c.index
			}
		}
	}
	var ids []int
	for i := n; i > 0; i -= t.pieceLen[words[i]] {
		id := words[i]
		if id == 0 && len(ids) > 0 && ids[len(ids)-1] == 0 {
			continue
		}
		ids = append(ids, id)
	}
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
	return ids
}
