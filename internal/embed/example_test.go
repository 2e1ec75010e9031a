package embed_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/mcp-conductor/conductor/internal/embed"
)

func Example() {
	cacheDir := "/var/cache/conductor"
	// At setup time: fetch and verify the model files once.
	if _, err := embed.Install(context.Background(), cacheDir, embed.InstallOptions{}); err != nil {
		log.Fatal(err)
	}
	// At run time: no network.
	m, err := embed.Load(embed.DefaultDir(cacheDir))
	if errors.Is(err, embed.ErrModelMissing) {
		log.Print("embedding model not installed; keyword search only")
		return
	} else if err != nil {
		log.Fatal(err)
	}
	vs, _ := m.Embed([]string{"show me what is in this folder", "list_directory: List the files in a directory"})
	var cos float32
	for i := range vs[0] {
		cos += vs[0][i] * vs[1][i] // unit vectors: the dot product is the cosine
	}
	fmt.Printf("%s, %d dims, similarity %.2f\n", m.Name(), m.Dim(), cos)
}
