package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/db"
)

// TestOpenAI_NodeSDK runs e2e/openai-sdk.mjs: the official `openai` npm package against the
// facade (completions, streaming, AuthenticationError, models.list). It skips when node or
// e2e/node_modules/openai is missing, unless CI=true, where it fails.
func TestOpenAI_NodeSDK(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("Node client test (-short)")
	}
	e2e, err := filepath.Abs("../e2e")
	if err != nil {
		t.Fatal(err)
	}
	node, nodeErr := exec.LookPath("node")
	_, pkgErr := os.Stat(filepath.Join(e2e, "node_modules", "openai", "package.json"))
	if nodeErr != nil || pkgErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node or the openai npm package is missing (run npm ci in e2e/): %v %v", nodeErr, pkgErr)
		}
		t.Skipf("node or the openai npm package is missing (run npm ci in e2e/): %v %v", nodeErr, pkgErr)
	}

	e := newEnv(t, "sqlite")
	ep := e.endpoint(map[string]any{"name": "node-sdk"})
	// No script: the scripted LLM echoes the last user message, which the Node script expects.

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "openai-sdk.mjs")
	cmd.Dir = e2e
	cmd.Env = append(nodeEnv(), "AGENTGATE_V1="+e.URL+"/v1", "ENDPOINT_SLUG="+ep.Slug(), "ENDPOINT_KEY="+ep.APIKey)
	out, err := cmd.CombinedOutput()
	t.Logf("openai-sdk.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("openai-sdk.mjs failed: %v", err)
	}
	if !strings.Contains(string(out), "openai-sdk: 6 passed, 0 failed") {
		t.Fatalf("unexpected summary")
	}
	// The SDK's runs are logged like any other.
	e.Srv.runner.rlog.sync(context.Background())
	runs, _, err := e.Store.ListRuns(context.Background(), db.RunFilter{EndpointID: ep.ID(), OwnerID: e.User, Limit: 50})
	if err != nil || len(runs) < 3 {
		t.Fatalf("%d runs logged (%v), want the SDK's", len(runs), err)
	}
}

// nodeEnv is the environment for a Node child: PATH and HOME only, so no OPENAI_* variable
// of the machine can change what the SDK does.
func nodeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return env
}
