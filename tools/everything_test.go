//go:build unix

package tools

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestEverythingServer runs the reference MCP server
// (@modelcontextprotocol/server-everything, pinned in e2e/package.json) over
// Streamable HTTP on 127.0.0.1 and drives it through a Toolbox. Without
// e2e/node_modules it skips, unless CI=true, where it fails.
func TestEverythingServer(t *testing.T) {
	t.Parallel()
	e2e, err := filepath.Abs("../e2e")
	if err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(e2e, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
	node, nodeErr := exec.LookPath("node")
	if _, err := os.Stat(entry); err != nil || nodeErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("server-everything not installed (run npm ci in e2e/): %v %v", err, nodeErr)
		}
		t.Skipf("server-everything not installed (run npm ci in e2e/): %v %v", err, nodeErr)
	}

	port := freePort(t)
	var out syncBuffer
	cmd := exec.Command(node, "--require", filepath.Join(e2e, "bind-localhost.cjs"), entry, "streamableHttp")
	cmd.Dir = e2e
	cmd.Env = append(childEnv(nil), "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		}
		if t.Failed() {
			t.Logf("server-everything output:\n%s", out.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waitFor(t, "server-everything to listen on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})

	m := newManager(t, Options{AllowPrivate: true})
	box := m.Toolbox([]ServerConfig{{ID: "everything", Slug: "everything", Transport: TransportStreamableHTTP,
		URL: "http://" + addr + "/mcp", Version: "1"}})
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

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
