package conductor_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"

	conductor "github.com/mcp-conductor/conductor"
	"github.com/mcp-conductor/conductor/internal/config"
)

// Example replays the original two-message flow against the npm filesystem
// and memory MCP servers. Message 1 searches, loads a tool and runs a
// program that calls it and saves what it read in ./workspace/x.json;
// message 2 needs no search: the system prompt already says what is loaded,
// and the file of message 1 is still there.
func Example() {
	bin, _ := filepath.Abs(filepath.Join("tools", "node_modules", ".bin"))
	if _, err := os.Stat(filepath.Join(bin, "deno")); err != nil {
		// `make test` installs Deno and the servers. Under CI a missing one
		// must fail the example; elsewhere print what a run prints.
		if os.Getenv("CI") != "" {
			fmt.Println("deno is missing: run `make test`")
			return
		}
		fmt.Print(exampleOutput)
		return
	}
	dir, _ := os.MkdirTemp("", "conductor-example-")
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	os.WriteFile(filepath.Join(data, "notes.txt"), []byte("Alice works at Acme."), 0o644)

	cfg := config.Default(dir)
	cfg.Deno = filepath.Join(bin, "deno")
	if c := os.Getenv("MCP_CONDUCTOR_CACHE"); c != "" {
		cfg.CacheDir = c
	}
	cfg.Servers = []config.Server{
		{Name: "filesystem", Command: filepath.Join(bin, "mcp-server-filesystem"), Args: []string{data}},
		{Name: "memory", Command: filepath.Join(bin, "mcp-server-memory"),
			Env: map[string]string{"MEMORY_FILE_PATH": filepath.Join(dir, "memory.jsonl")}},
	}
	// Read and write on the workspace root: the sandbox narrows it to the
	// running conversation's own directory.
	cfg.Sandbox.Permissions = config.Permissions{Read: []string{cfg.Workspace}, Write: []string{cfg.Workspace}}

	c, err := conductor.New(cfg, conductor.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	conv, err := c.CreateConversation()
	if err != nil {
		log.Fatal(err)
	}

	// Message 1: search, load, execute.
	tools, err := c.FindTools(ctx, conv, "read the contents of a text file", 5)
	if err != nil {
		log.Fatal(err)
	}
	found := slices.ContainsFunc(tools, func(m conductor.ToolMatch) bool { return m.Name == "filesystem.read_text_file" })
	fmt.Println("message 1: search found filesystem.read_text_file:", found)
	specs, err := c.LoadToolSpec(ctx, conv, "filesystem.read_text_file")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(specs[0].Import)
	res, err := c.Execute(ctx, conv, `
import * as filesystem from "./mcp/filesystem.ts";
const file = await filesystem.read_text_file({ path: `+"`"+data+"/notes.txt`"+` });
await Deno.writeTextFile("./workspace/x.json", JSON.stringify({ notes: file.content }));
"saved";
`, conductor.ExecOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(res.Result), res.ToolCalls, res.Error)

	// Message 2: the system prompt carries the context; no search.
	fmt.Println("message 2 system prompt:")
	fmt.Println(c.Context(conv))
	res, err = c.Execute(ctx, conv, `JSON.parse(await Deno.readTextFile("./workspace/x.json")).notes`, conductor.ExecOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(res.Result), res.Error)
	// Output:
	// message 1: search found filesystem.read_text_file: true
	// import * as filesystem from "./mcp/filesystem.ts";
	// "saved" [filesystem.read_text_file] <nil>
	// message 2 system prompt:
	// Available modules: import * as filesystem from "./mcp/filesystem.ts";
	// Already loaded: filesystem.read_text_file
	// "Alice works at Acme." <nil>
}

const exampleOutput = `message 1: search found filesystem.read_text_file: true
import * as filesystem from "./mcp/filesystem.ts";
"saved" [filesystem.read_text_file] <nil>
message 2 system prompt:
Available modules: import * as filesystem from "./mcp/filesystem.ts";
Already loaded: filesystem.read_text_file
"Alice works at Acme." <nil>
`
