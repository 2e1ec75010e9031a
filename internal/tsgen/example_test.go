package tsgen_test

import (
	"encoding/json"
	"fmt"

	"github.com/mcp-conductor/conductor/internal/tsgen"
)

// What load_tools returns for one tool: the import line and the declarations.
func ExampleDeclarations() {
	tools := []tsgen.Tool{{
		Name:        "read-file",
		Description: "Read a file.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"},"head":{"type":"integer","description":"First N lines"}},"required":["path"]}`),
	}}
	decls, err := tsgen.Declarations("google-drive", tools, []string{"read-file"})
	if err != nil {
		panic(err)
	}
	fmt.Println(tsgen.ImportLine("google-drive"))
	fmt.Print(decls)
	// Output:
	// import * as google_drive from "./mcp/google-drive.ts";
	// /** Read a file. (MCP tool "read-file") */
	// export function read_file(args: {
	//  /** First N lines @integer */
	//  head?: number;
	//  path: string;
	// }): Promise<unknown>;
}
