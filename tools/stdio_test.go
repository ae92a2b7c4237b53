//go:build unix

package tools

import (
	"encoding/json"
	"errors"
	"strconv"
	"syscall"
	"testing"

	"github.com/agentgate/agentgate/tools/toolstest"
)

func stdioConfig(tb testing.TB, id string) ServerConfig {
	tb.Helper()
	return ServerConfig{ID: id, Slug: "local", Transport: TransportStdio, Command: toolstest.StdioServer(tb),
		Env: map[string]string{"TOOLS_TEST_VAR": "set-by-config"}, Version: "1"}
}

func callText(tb testing.TB, box *Toolbox, name, args string) string {
	tb.Helper()
	res, err := box.Call(tb.Context(), name, json.RawMessage(args))
	if err != nil || res.IsError {
		tb.Fatalf("Call(%s) = %+v, %v", name, res, err)
	}
	return res.Text
}

func childPid(tb testing.TB, box *Toolbox) int {
	tb.Helper()
	pid, err := strconv.Atoi(callText(tb, box, "local__pid", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return pid
}

// alive reports whether pid exists (a zombie still does).
func alive(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestStdioServer(t *testing.T) {
	t.Parallel()
	cfg := stdioConfig(t, "op:local")
	m := NewManager(Options{})
	box := m.Toolbox([]ServerConfig{cfg})

	if got := callText(t, box, "local__echo", `{"text":"over stdio"}`); got != "over stdio" {
		t.Fatalf("echo = %q", got)
	}
	if got := callText(t, box, "local__env", `{"name":"TOOLS_TEST_VAR"}`); got != "set-by-config" {
		t.Fatalf("configured env = %q", got)
	}
	if got := callText(t, box, "local__env", `{"name":"TOOLS_TEST_SECRET"}`); got != "<unset>" {
		t.Fatalf("gateway env leaked to the child: %q", got)
	}
	pid := childPid(t, box)
	if again := childPid(t, m.Toolbox([]ServerConfig{cfg})); again != pid {
		t.Fatalf("second toolbox got child %d, want the same child %d", again, pid)
	}

	// The child dies mid-call: the call fails, the next use starts a new child.
	if _, err := box.Call(t.Context(), "local__crash", nil); err == nil {
		t.Fatal("crash call succeeded")
	}
	pid2 := childPid(t, box)
	if pid2 == pid {
		t.Fatal("no new child after the crash")
	}
	if alive(pid) {
		t.Fatalf("crashed child %d not reaped", pid)
	}

	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if alive(pid2) {
		t.Fatalf("child %d still exists after Close", pid2)
	}
}

// A child that ignores SIGTERM and outlives its stdin is SIGKILLed and reaped.
func TestStdioStubbornChildKilled(t *testing.T) {
	t.Parallel()
	m := NewManager(Options{})
	box := m.Toolbox([]ServerConfig{stdioConfig(t, "op:stubborn")})
	pid := childPid(t, box)
	callText(t, box, "local__stubborn", "")
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if alive(pid) {
		t.Fatalf("child %d still exists after Close", pid)
	}
}
