package embed

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
// The weights file holds its slices as they are in memory (see
// Model.fields): changing trieNode or trieEdge requires raising
// weightsVersion.
type tokenizer struct {
	// The vocabulary trie, flattened: nodes[0] is the root, and the children
	// of a node are edges[first:first+count], sorted by rune. (A map per
	// node cost 3.6 MB of heap; this costs well under 1 MB.)
	nodes []trieNode
	edges []trieEdge
	// pieceLen is the length of each piece in UTF-16 code units, which is
	// what the original steps back by when it reads the best path.
	pieceLen []int32
}

// trieNode is a node of the trie; a piece ends at it if runes > 0.
type trieNode struct {
	score        float64
	first, count int32
	index        int32
	runes        int32 // of the piece that ends here
}

type trieEdge struct {
	r     rune
	child int32
}

// child returns the child of node n along r, or -1.
func (t *tokenizer) child(n int32, r rune) int32 {
	nd := &t.nodes[n]
	lo, hi := nd.first, nd.first+nd.count
	for lo < hi {
		m := (lo + hi) / 2
		switch e := t.edges[m]; {
		case e.r == r:
			return e.child
		case e.r < r:
			lo = m + 1
		default:
			hi = m
		}
	}
	return -1
}

// buildNode is the trie while it is built, before flattening.
type buildNode struct {
	children     map[rune]*buildNode
	score        float64
	index, runes int // runes > 0: a piece ends here
}

// readVocab reads vocab.json and returns it with its size and sum.
func readVocab(path string) ([][2]any, source, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, source{}, fmt.Errorf("%w: %v", ErrModelMissing, err)
		}
		return nil, source{}, err
	}
	var vocab [][2]any
	if err := json.Unmarshal(raw, &vocab); err != nil {
		return nil, source{}, fmt.Errorf("vocab.json: %w", err)
	}
	return vocab, sourceOf(filepath.Base(path), raw), nil
}

func newTokenizer(vocab [][2]any) (*tokenizer, error) {
	t := &tokenizer{pieceLen: make([]int32, len(vocab))}
	root := &buildNode{}
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
		t.pieceLen[i] = int32(len(utf16.Encode([]rune(piece))))
		if i < reservedSymbols {
			continue
		}
		n := root
		runes := 0
		for _, r := range piece {
			if n.children == nil {
				n.children = make(map[rune]*buildNode)
			}
			c := n.children[r]
			if c == nil {
				c = &buildNode{}
				n.children[r] = c
			}
			n = c
			runes++
		}
		if runes > 0 {
			n.score, n.index, n.runes = score, i, runes
		}
	}
	t.flatten(root)
	return t, nil
}

// flatten lays the built trie out breadth first in t.nodes and t.edges.
func (t *tokenizer) flatten(root *buildNode) {
	queue := []*buildNode{root}
	t.nodes = append(t.nodes, trieNode{})
	for q := 0; q < len(queue); q++ {
		b := queue[q]
		nd := &t.nodes[q]
		nd.score, nd.index, nd.runes = b.score, int32(b.index), int32(b.runes)
		keys := make([]rune, 0, len(b.children))
		for r := range b.children {
			keys = append(keys, r)
		}
		slices.Sort(keys)
		nd.first, nd.count = int32(len(t.edges)), int32(len(keys))
		for _, r := range keys {
			t.edges = append(t.edges, trieEdge{r: r, child: int32(len(queue))})
			queue = append(queue, b.children[r])
			t.nodes = append(t.nodes, trieNode{})
		}
	}
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
		node := t.child(0, symbols[i])
		found := false
		for j := i; j < n && node >= 0; j++ {
			nd := &t.nodes[node]
			if nd.runes > 0 {
				ends[i+int(nd.runes)] = append(ends[i+int(nd.runes)], candidate{i, nd.score, int(nd.index)})
				found = true
			}
			if j+1 < n {
				node = t.child(node, symbols[j+1])
			} else {
				node = -1
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
	for i := n; i > 0; i -= int(t.pieceLen[words[i]]) {
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
