//go:build ignore

// capture records the tools/list answers of real MCP servers as
// testdata/servers.json, for the token benchmark. It speaks raw JSON-RPC over
// the server's stdio so that every schema is kept byte for byte (key order
// included), as a client would forward it to a model.
//
//	npm install <the packages of testdata/capture.json>   # in a temp dir
//	echo '{}' > gcreds.json; echo '{}' > goauth.json       # gdrive reads them
//	PATH=$PWD/node_modules/.bin:$PATH go run .../internal/tokenbench/capture.go \
//	    -out .../internal/tokenbench/testdata/servers.json .../testdata/capture.json
//
// capture.json lists {server, package, version, command, args, env} in the
// order the benchmark takes servers; env values are dummies for servers that
// insist on a token before they list tools, and "skipped" says why a server
// could not be captured offline. Commands resolve on PATH, relative paths
// against the working directory.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"time"
)

type spec struct {
	Server  string            `json:"server"`
	Package string            `json:"package"`
	Version string            `json:"version"`
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env"`
	Skipped string            `json:"skipped"`
}

type tool struct {
	Name         string          `json:"name"`
	Title        string          `json:"title,omitempty"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"inputSchema"`
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
}

type snapshot struct {
	Server  string `json:"server"`
	Package string `json:"package"` // name@version
	Tools   []tool `json:"tools"`
}

func main() {
	out := flag.String("out", "testdata/servers.json", "output file")
	flag.Parse()
	b, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		log.Fatal(err)
	}
	var specs []spec
	if err := json.Unmarshal(b, &specs); err != nil {
		log.Fatal(err)
	}
	var snaps []snapshot
	for _, s := range specs {
		if s.Skipped != "" {
			continue
		}
		tools, err := capture(s)
		if err != nil {
			log.Printf("%s: %v", s.Server, err)
			continue
		}
		log.Printf("%s: %d tools", s.Server, len(tools))
		snaps = append(snaps, snapshot{Server: s.Server, Package: s.Package + "@" + s.Version, Tools: tools})
	}
	b, err = json.MarshalIndent(snaps, "", " ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}

func capture(s spec) ([]tool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Command, s.Args...)
	cmd.Env = append(os.Environ(), "HOME="+os.TempDir())
	for k, v := range s.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = io.Discard
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { in.Close(); cmd.Process.Kill(); cmd.Wait() }()
	r := bufio.NewReaderSize(outp, 1<<20)
	id := 0
	call := func(method string, params any) (json.RawMessage, error) {
		id++
		msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
		if _, err := in.Write(append(msg, '\n')); err != nil {
			return nil, err
		}
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return nil, fmt.Errorf("%s: %w", method, err)
			}
			var resp struct {
				ID     *int            `json:"id"`
				Result json.RawMessage `json:"result"`
				Error  json.RawMessage `json:"error"`
			}
			if json.Unmarshal(line, &resp) != nil || resp.ID == nil || *resp.ID != id {
				continue // log lines, notifications
			}
			if resp.Error != nil {
				return nil, fmt.Errorf("%s: %s", method, resp.Error)
			}
			return resp.Result, nil
		}
	}
	if _, err := call("initialize", map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "conductor-capture", "version": "1"}}); err != nil {
		return nil, err
	}
	in.Write([]byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n"))
	var tools []tool
	cursor := ""
	for {
		params := map[string]any{}
		if cursor != "" {
			params["cursor"] = cursor
		}
		res, err := call("tools/list", params)
		if err != nil {
			return nil, err
		}
		var page struct {
			Tools      []tool `json:"tools"`
			NextCursor string `json:"nextCursor"`
		}
		if err := json.Unmarshal(res, &page); err != nil {
			return nil, err
		}
		tools = append(tools, page.Tools...)
		if page.NextCursor == "" {
			return tools, nil
		}
		cursor = page.NextCursor
	}
}
