package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mcp-conductor/conductor/internal/store"
)

// A conversation that loads a tool, runs a program, and teaches co-usage.
func Example() {
	dir, err := os.MkdirTemp("", "store-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	s, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "state.db"), store.Options{ConversationTTL: 24 * time.Hour})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	// Message 1 of the local user's conversation "c1" loads a tool.
	err = s.UpdateConversation(ctx, "", "c1", func(c *store.Conversation) error {
		c.Loaded = append(c.Loaded, "salesforce.query")
		c.Servers = append(c.Servers, "salesforce")
		return nil
	})
	if err != nil {
		panic(err)
	}
	_ = s.AppendExecution(ctx, "", "c1", store.Execution{Tools: []string{"salesforce.query", "slack.post"}, Outcome: "ok"})
	_ = s.AddCoUsage(ctx, []string{"salesforce.query", "slack.post"})

	// Message 2 finds the tool already loaded.
	c, _ := s.GetConversation(ctx, "", "c1")
	fmt.Println("loaded:", c.Loaded)
	u, _ := s.CoUsage(ctx, "salesforce.query", 3)
	fmt.Println("often used with:", u.Partners[0].Tool)
	// Another principal naming "c1" finds nothing.
	_, err = s.GetConversation(ctx, "bob", "c1")
	fmt.Println(err)
	// Output:
	// loaded: [salesforce.query]
	// often used with: slack.post
	// store: not found
}
