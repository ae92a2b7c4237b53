//go:build unix

package toolstest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartEverything runs the reference MCP server (@modelcontextprotocol/server-everything,
// pinned in e2e/package.json) over Streamable HTTP bound to 127.0.0.1 (e2e/bind-localhost.cjs)
// until the test ends, and returns its /mcp URL. Without node or e2e/node_modules it skips the
// test, unless CI=true, where it fails it.
func StartEverything(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("toolstest: no source path for finding e2e/")
	}
	e2e := filepath.Join(filepath.Dir(file), "..", "..", "e2e")
	entry := filepath.Join(e2e, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
	node, nodeErr := exec.LookPath("node")
	if _, err := os.Stat(entry); err != nil || nodeErr != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("server-everything not installed (run npm ci in e2e/): %v %v", err, nodeErr)
		}
		tb.Skipf("server-everything not installed (run npm ci in e2e/): %v %v", err, nodeErr)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()

	var out lockedBuffer
	cmd := exec.Command(node, "--require", filepath.Join(e2e, "bind-localhost.cjs"), entry, "streamableHttp")
	cmd.Dir = e2e
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "PORT=" + strconv.Itoa(port)}
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		}
		if tb.Failed() {
			tb.Logf("server-everything output:\n%s", out.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	WaitFor(tb, "server-everything to listen on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
	return "http://" + addr + "/mcp"
}

// lockedBuffer is a bytes.Buffer safe for a child's stdout and stderr at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
