package upstream_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/mcp-conductor/conductor/internal/config"
	"github.com/mcp-conductor/conductor/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func ExampleHub() {
	// An upstream MCP server over streamable HTTP that wants a token.
	srv := mcp.NewServer(&mcp.Implementation{Name: "greeter"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "greet", Description: "says hi"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Name string `json:"name"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hi " + in.Name}}}, nil, nil
	})
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		handler.ServeHTTP(w, r)
	}))
	defer ts.Close()

	hub := upstream.New([]config.Server{
		{Name: "greeter", URL: ts.URL, Headers: map[string]string{"Authorization": "Bearer secret"}},
	}, upstream.Options{})
	defer hub.Close()
	hub.Start(context.Background())

	for _, t := range hub.Tools() {
		fmt.Printf("%s.%s: %s\n", t.Server, t.Tool.Name, t.Tool.Description)
	}
	res, err := hub.Call(context.Background(), "greeter", "greet", []byte(`{"name":"Ada"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)
	_, err = hub.Call(context.Background(), "nope", "greet", nil)
	fmt.Println(err)
	// Output:
	// greeter.greet: says hi
	// hi Ada
	// upstream "nope": unknown server
}
