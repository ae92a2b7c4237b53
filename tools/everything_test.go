//go:build unix

package tools

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/tools/toolstest"
)

// TestEverythingServer runs the reference MCP server
// (@modelcontextprotocol/server-everything, pinned in e2e/package.json) over
// Streamable HTTP on 127.0.0.1 and drives it through a Toolbox. Without
// e2e/node_modules it skips, unless CI=true, where it fails.
func TestEverythingServer(t *testing.T) {
	t.Parallel()
	url := toolstest.StartEverything(t)

	m := newManager(t, Options{AllowPrivate: true})
	box := m.Toolbox([]ServerConfig{{ID: "everything", Slug: "everything", Transport: TransportStreamableHTTP,
		URL: url, Version: "1"}})
	tools, warnings, err := box.List(t.Context())
	if err != nil || len(warnings) > 0 {
		t.Fatalf("List: %v %q", err, warnings)
	}
	got := names(tools)
	for _, want := range []string{"everything__echo", "everything__get-sum"} {
		if !slices.Contains(got, want) {
			t.Fatalf("tools %q lack %q", got, want)
		}
	}
	for _, tool := range tools {
		if tool.Name == "everything__get-sum" && !strings.Contains(string(tool.InputSchema), `"a"`) {
			t.Errorf("get-sum schema = %s", tool.InputSchema)
		}
	}

	res, err := box.Call(t.Context(), "everything__echo", json.RawMessage(`{"message":"hello from agentgate"}`))
	if err != nil || res.IsError || res.Text != "Echo: hello from agentgate" {
		t.Fatalf("echo = %+v, %v", res, err)
	}
	res, err = box.Call(t.Context(), "everything__get-sum", json.RawMessage(`{"a":2,"b":40}`))
	if err != nil || res.IsError || !strings.Contains(res.Text, "42") {
		t.Fatalf("get-sum = %+v, %v", res, err)
	}
	// A schema violation is the tool's failure, reported as a result.
	res, err = box.Call(t.Context(), "everything__get-sum", json.RawMessage(`{"a":"two"}`))
	if err == nil && !res.IsError {
		t.Fatalf("get-sum with bad arguments = %+v", res)
	}
}
