package catalog_test

import (
	"context"
	"fmt"

	"github.com/mcp-conductor/conductor/internal/catalog"
)

func ExampleIndex_Search() {
	tools := []catalog.Tool{
		{Server: "fs", Name: "write_file", Description: "Create a new file or overwrite an existing one. Use with care."},
		{Server: "backup", Name: "write_file", Description: "Create a new file or overwrite an existing one."},
		{Server: "fs", Name: "list_directory", Description: "List the files and folders in a directory."},
		{Server: "kg", Name: "create_entities", Description: "Create entities in the knowledge graph."},
	}
	// No Embedder: keyword search only (BM25F with capability words).
	ix, err := catalog.Build(context.Background(), tools, catalog.Options{})
	if err != nil {
		panic(err)
	}
	res, _ := ix.Search(context.Background(), "save the results", catalog.SearchOptions{Limit: 1})
	for _, r := range res {
		fmt.Printf("%s — %s %v\n", r.Name, r.Description, r.Also)
	}
	fmt.Println(ix.Suggest("fs.list_dir", 1))
	// Output:
	// fs.write_file — Create a new file or overwrite an existing one. [backup.write_file]
	// [fs.list_directory]
}
