package main

import (
	_ "github.com/evanw/esbuild/pkg/api"
	_ "github.com/modelcontextprotocol/go-sdk/mcp"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "sigs.k8s.io/yaml"
	_ "modernc.org/sqlite"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "golang.org/x/sys/unix"
	_ "github.com/google/go-cmp/cmp"
	_ "go.uber.org/goleak"
)

func main() {}
