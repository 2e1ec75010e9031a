package config_test

import (
	"fmt"
	"log"

	"github.com/mcp-conductor/conductor/internal/config"
)

func ExampleLoad() {
	env := map[string]string{
		"HOME":                          "/home/ada",
		"MCP_CONDUCTOR_RUN_ARGS":        "allow-read=~/data;/srv/shared,allow-net=api.example.com:443,deny-env",
		"MCP_CONDUCTOR_DEFAULT_TIMEOUT": "10000",
	}
	// Production passes os.Getenv and the --config flag.
	cfg, err := config.Load(func(k string) string { return env[k] }, "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Workspace)
	fmt.Println(cfg.Sandbox.Permissions.Flags())
	d, clamped := cfg.ClampTimeout(0)
	fmt.Println(d, clamped)
	d, clamped = cfg.ClampTimeout(cfg.Sandbox.MaxTimeout * 2)
	fmt.Println(d, clamped)
	// Output:
	// /home/ada/.mcp-conductor/workspace
	// [--allow-read=/home/ada/data,/srv/shared --allow-net=api.example.com:443 --deny-env]
	// 10s false
	// 5m0s true
}

func ExampleLoad_refused() {
	env := map[string]string{"HOME": "/home/ada", "MCP_CONDUCTOR_RUN_ARGS": "allow-read=/data,allow-all"}
	_, err := config.Load(func(k string) string { return env[k] }, "")
	fmt.Println(err)
	// Output:
	// MCP_CONDUCTOR_RUN_ARGS="allow-read=/data,allow-all": "allow-all": allow-all is refused: grants every permission
}
