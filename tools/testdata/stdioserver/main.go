// Command stdioserver is a tiny MCP server over stdio used by the tools
// package tests. It exits when stdin closes (the orderly path) and offers:
// echo (text back), pid (its process id), crash (exits mid-call), env (the
// value of one environment variable) and stubborn (ignores SIGTERM from then on).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

func main() {
	s := server.NewMCPServer("stdioserver", "1.0.0")
	s.AddTool(mcp.NewTool("echo", mcp.WithString("text", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(req.GetString("text", "")), nil
		})
	s.AddTool(mcp.NewTool("pid"),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(fmt.Sprint(os.Getpid())), nil
		})
	s.AddTool(mcp.NewTool("crash"),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			os.Exit(3)
			return nil, nil
		})
	s.AddTool(mcp.NewTool("env", mcp.WithString("name", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			v, ok := os.LookupEnv(req.GetString("name", ""))
			if !ok {
				return mcp.NewToolResultText("<unset>"), nil
			}
			return mcp.NewToolResultText(v), nil
		})
	s.AddTool(mcp.NewTool("stubborn"),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			signal.Ignore(syscall.SIGTERM)
			stubborn.Store(true)
			return mcp.NewToolResultText("ok"), nil
		})
	if err := server.ServeStdio(s); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if stubborn.Load() {
		select {} // only SIGKILL ends us now
	}
}

// stubborn is set by the stubborn tool: after stdin closes the server stays up.
var stubborn atomic.Bool
