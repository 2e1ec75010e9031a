package deps_test

import (
	"fmt"

	"github.com/mcp-conductor/conductor/internal/deps"
)

func ExampleAllowlist_Check() {
	list, err := deps.Parse([]string{"npm:zod@^3", "jsr:@std/path@^1"})
	if err != nil {
		panic(err)
	}
	for _, spec := range []string{"npm:zod@^3", "zod/v4", "node:fs", "npm:zod@^2", "npm:lodash"} {
		fmt.Println(spec, "→", list.Check(spec))
	}
	// Output:
	// npm:zod@^3 → <nil>
	// zod/v4 → <nil>
	// node:fs → <nil>
	// npm:zod@^2 → import "npm:zod@^2" is not allowed: version ^2 is outside the allowed range ^3; allowed packages: jsr:@std/path@^1, npm:zod@^3
	// npm:lodash → import "npm:lodash" is not allowed: package not in the allowlist; allowed packages: jsr:@std/path@^1, npm:zod@^3
}
