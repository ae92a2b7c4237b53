package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/agentgate/agentgate/tools/toolstest"
)

func TestListMergesServersWithUniqueNames(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 70)
	a := startStreamable(t, "alpha", func(s *server.MCPServer) {
		textTool(s, "search", "a-search")
		textTool(s, "get.item", "a-get")
		textTool(s, long+"1", "long1")
		textTool(s, long+"2", "long2")
	}, nil)
	b := startSSE(t, "beta", func(s *server.MCPServer) {
		textTool(s, "search", "b-search")
	})
	m := newManager(t, Options{AllowPrivate: true})
	tb := m.Toolbox([]ServerConfig{a.cfg, b.cfg})

	tools, warnings, err := tb.List(t.Context())
	if err != nil || len(warnings) != 0 {
		t.Fatalf("List: err=%v warnings=%v", err, warnings)
	}
	longBase := ToolName("alpha", long+"1") // both long names cut to the same 64 chars
	want := []string{"alpha__get_item", "alpha__search", longBase, longBase[:62] + "_2", "beta__search"}
	if got := names(tools); !slices.Equal(got, want) {
		t.Fatalf("names:\n got %q\nwant %q", got, want)
	}
	for _, tool := range tools {
		if len(tool.Name) > MaxToolNameLen {
			t.Errorf("%q longer than %d", tool.Name, MaxToolNameLen)
		}
		var schema map[string]any
		if err := json.Unmarshal(tool.InputSchema, &schema); err != nil || schema["type"] != "object" {
			t.Errorf("%s: input schema %s (%v)", tool.Name, tool.InputSchema, err)
		}
	}
	if tools[0].Server != "alpha" || tools[0].Original != "get.item" || tools[0].Description != "says a-get" {
		t.Errorf("tool 0 = %+v", tools[0])
	}

	// Calls are routed by exposed name to the right server and original name.
	for name, want := range map[string]string{
		"alpha__search":      "a-search",
		"beta__search":       "b-search",
		"alpha__get_item":    "a-get",
		longBase:             "long1",
		longBase[:62] + "_2": "long2",
	} {
		res, err := tb.Call(t.Context(), name, nil)
		if err != nil || res.IsError || res.Text != want {
			t.Errorf("Call(%s) = %+v, %v; want %q", name, res, err, want)
		}
	}
	// The second List names the tools the same way.
	again, _, err := tb.List(t.Context())
	if err != nil || !slices.Equal(names(again), want) {
		t.Fatalf("second List = %q, %v", names(again), err)
	}
}

func TestCallResults(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := startStreamable(t, "s", func(s *server.MCPServer) {
		toolstest.EchoTool(s)
		s.AddTool(mcp.NewTool("fail"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultError("it broke"), nil
		})
		s.AddTool(mcp.NewTool("big"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(big), nil
		})
		s.AddTool(mcp.NewTool("mixed"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{
				mcp.NewTextContent("first"),
				mcp.NewImageContent("aGVsbG8=", "image/png"), // "hello": 5 bytes
				mcp.NewEmbeddedResource(mcp.TextResourceContents{URI: "file:///a.txt", Text: "embedded text"}),
				mcp.NewEmbeddedResource(mcp.BlobResourceContents{URI: "file:///b.bin", MIMEType: "application/octet-stream", Blob: "AAEC"}),
				mcp.NewResourceLink("file:///c", "c", "", "text/plain"),
			}}, nil
		})
		s.AddTool(mcp.NewTool("structured"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{}, StructuredContent: map[string]any{"n": 1}}, nil
		})
		s.AddTool(mcp.NewTool("hang"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			select {
			case <-ctx.Done():
			case <-release:
			}
			return mcp.NewToolResultText("late"), nil
		})
	}, nil)
	tb := newManager(t, Options{AllowPrivate: true}).Toolbox([]ServerConfig{srv.cfg})
	// A second manager with a short tool timeout, for the hanging tool.
	short := newManager(t, Options{AllowPrivate: true, ToolTimeout: 300 * time.Millisecond}).Toolbox([]ServerConfig{srv.cfg})

	tests := []struct {
		name, tool, args string
		want             Result
		wantErr          string
	}{
		{name: "text", tool: "s__echo", args: `{"text":"héllo"}`, want: Result{Text: "héllo"}},
		{name: "isError", tool: "s__fail", want: Result{Text: "it broke", IsError: true}},
		{name: "1MiB whole", tool: "s__big", args: `null`, want: Result{Text: big}},
		{name: "mixed content", tool: "s__mixed", args: `{}`, want: Result{Text: "first\n[image image/png 5 bytes]\nembedded text\n[resource file:///b.bin application/octet-stream 3 bytes]\n[resource file:///c \"c\" text/plain]"}},
		{name: "structured only", tool: "s__structured", want: Result{Text: `{"n":1}`}},
		{name: "unknown tool", tool: "s__nope", wantErr: "unknown tool"},
		{name: "invalid JSON", tool: "s__echo", args: `{"text":`, wantErr: "not valid JSON"},
		{name: "not an object", tool: "s__echo", args: `[1]`, wantErr: "JSON object"},
		{name: "timeout", tool: "s__hang", wantErr: `tool "s__hang": timed out after 300ms`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			box := tb
			if tc.name == "timeout" {
				box = short
			}
			res, err := box.Call(t.Context(), tc.tool, json.RawMessage(tc.args))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Call = %+v, %v; want error containing %q", res, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			if res.IsError != tc.want.IsError || res.Text != tc.want.Text {
				t.Fatalf("Call = {IsError:%v Text:%.80q (len %d)}, want {IsError:%v Text:%.80q (len %d)}",
					res.IsError, res.Text, len(res.Text), tc.want.IsError, tc.want.Text, len(tc.want.Text))
			}
		})
	}
}

func TestCallTimeoutKeepsSessionAndHonoursCallerCtx(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := startStreamable(t, "s", func(s *server.MCPServer) {
		toolstest.EchoTool(s)
		s.AddTool(mcp.NewTool("hang"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			select {
			case <-ctx.Done():
			case <-release:
			}
			return mcp.NewToolResultText("late"), nil
		})
	}, nil)
	m := newManager(t, Options{AllowPrivate: true, ToolTimeout: time.Hour})
	tb := m.Toolbox([]ServerConfig{srv.cfg})
	if _, _, err := tb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := tb.Call(ctx, "s__hang", nil); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Call after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Call did not return after its ctx was cancelled")
	}
	// The connection is still good: no reconnect, no second initialize.
	if res, err := tb.Call(t.Context(), "s__echo", json.RawMessage(`{"text":"x"}`)); err != nil || res.Text != "x" {
		t.Fatalf("Call after timeout = %+v, %v", res, err)
	}
	if n := srv.Inits.Load(); n != 1 {
		t.Fatalf("initialize calls = %d, want 1", n)
	}
}

func TestSessionReusedAcrossToolboxes(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{TransportStreamableHTTP, TransportSSE} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			srv := startOver(t, transport, "s", toolstest.EchoTool)
			m := newManager(t, Options{AllowPrivate: true})

			// Concurrent first use from many toolboxes creates one client.
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tb := m.Toolbox([]ServerConfig{srv.cfg})
					res, err := tb.Call(t.Context(), "s__echo", json.RawMessage(fmt.Sprintf(`{"text":"%d"}`, i)))
					if err == nil && res.Text != fmt.Sprint(i) {
						err = fmt.Errorf("got %q", res.Text)
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			// A later run's toolbox still uses the same session.
			if _, err := m.Toolbox([]ServerConfig{srv.cfg}).Call(t.Context(), "s__echo", json.RawMessage(`{"text":"z"}`)); err != nil {
				t.Fatal(err)
			}
			if n := srv.Inits.Load(); n != 1 {
				t.Fatalf("initialize calls = %d, want 1", n)
			}

			// A new Version replaces the client; Forget drops it.
			cfg := srv.cfg
			cfg.Version = "2"
			if _, _, err := m.Toolbox([]ServerConfig{cfg}).List(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n := srv.Inits.Load(); n != 2 {
				t.Fatalf("initialize calls after Version change = %d, want 2", n)
			}
			m.Forget(cfg.ID)
			if _, _, err := m.Toolbox([]ServerConfig{cfg}).List(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n := srv.Inits.Load(); n != 3 {
				t.Fatalf("initialize calls after Forget = %d, want 3", n)
			}
		})
	}
}

func TestListCacheAndListChanged(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{TransportStreamableHTTP, TransportSSE} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			srv := startOver(t, transport, "s", toolstest.EchoTool)
			m := newManager(t, Options{AllowPrivate: true})
			var (
				clockMu sync.Mutex
				clock   = time.Unix(1_700_000_000, 0)
			)
			m.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }

			list := func() []string {
				t.Helper()
				tools, warnings, err := m.Toolbox([]ServerConfig{srv.cfg}).List(t.Context())
				if err != nil || len(warnings) > 0 {
					t.Fatalf("List: %v %v", err, warnings)
				}
				return names(tools)
			}
			list()
			list()
			if n := srv.Lists.Load(); n != 1 {
				t.Fatalf("tools/list calls after two Lists = %d, want 1 (cache hit)", n)
			}

			// list_changed invalidates the cache.
			textTool(srv.MCP, "added", "new") // mcp-go notifies every session
			toolstest.WaitFor(t, "the added tool after list_changed", func() bool {
				return slices.Contains(list(), "s__added")
			})
			if n := srv.Lists.Load(); n != 2 {
				t.Fatalf("tools/list calls after list_changed = %d, want 2", n)
			}

			// The TTL expires the cache.
			clockMu.Lock()
			clock = clock.Add(DefaultListTTL + time.Second)
			clockMu.Unlock()
			list()
			if n := srv.Lists.Load(); n != 3 {
				t.Fatalf("tools/list calls after TTL = %d, want 3", n)
			}
		})
	}
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	srv := startStreamable(t, "p", func(s *server.MCPServer) {
		for i := range 7 {
			textTool(s, fmt.Sprintf("t%d", i), "x")
		}
	}, nil, server.WithPaginationLimit(2))
	m := newManager(t, Options{AllowPrivate: true})
	tools, _, err := m.Toolbox([]ServerConfig{srv.cfg}).List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(tools) != 7 {
		t.Fatalf("got %d tools (%q), want 7", len(tools), names(tools))
	}
	if n := srv.Lists.Load(); n != 4 {
		t.Fatalf("tools/list pages = %d, want 4", n)
	}
}

func TestServerDownIsAWarning(t *testing.T) {
	t.Parallel()
	up := startStreamable(t, "up", toolstest.EchoTool, nil)
	down := startStreamable(t, "down", toolstest.EchoTool, nil)
	down.TS.Close() // nothing listens there any more
	down.cfg.Headers = map[string]string{"Authorization": "Bearer sekrit-token-123"}
	down.cfg.URL += "?token=sekrit-query"
	var logs bytes.Buffer
	var logMu sync.Mutex
	m := newManager(t, Options{AllowPrivate: true, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))})

	tools, warnings, err := m.Toolbox([]ServerConfig{down.cfg, up.cfg}).List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := names(tools); !slices.Equal(got, []string{"up__echo"}) {
		t.Fatalf("tools = %q", got)
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], `mcp server "down" unavailable: `) {
		t.Fatalf("warnings = %q", warnings)
	}
	if _, err := m.Toolbox([]ServerConfig{down.cfg}).Call(t.Context(), "down__echo", nil); err == nil {
		t.Fatal("Call on a down server succeeded")
	}
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Contains(warnings[0], "sekrit") || strings.Contains(logs.String(), "sekrit") {
		t.Fatalf("header value leaked: %q / %s", warnings[0], logs.String())
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestHeadersAreSent(t *testing.T) {
	t.Parallel()
	requireKey := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Api-Key") != "k-123" {
				http.Error(w, "no key", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	srv := startStreamable(t, "h", toolstest.EchoTool, requireKey)
	m := newManager(t, Options{AllowPrivate: true})

	_, warnings, err := m.Toolbox([]ServerConfig{srv.cfg}).List(t.Context())
	if err != nil || len(warnings) != 1 {
		t.Fatalf("without the header: warnings=%q err=%v; want one warning", warnings, err)
	}
	cfg := srv.cfg
	cfg.Headers = map[string]string{"X-Api-Key": "k-123"}
	cfg.Version = "2"
	tools, warnings, err := m.Toolbox([]ServerConfig{cfg}).List(t.Context())
	if err != nil || len(warnings) != 0 || len(tools) != 1 {
		t.Fatalf("with the header: %q %q %v", names(tools), warnings, err)
	}
}

func TestServerDiesMidCall(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := startStreamable(t, "d", func(s *server.MCPServer) {
		toolstest.EchoTool(s)
		s.AddTool(mcp.NewTool("slow"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			entered <- struct{}{}
			select {
			case <-ctx.Done():
			case <-release:
			}
			return mcp.NewToolResultText("late"), nil
		})
	}, nil)
	m := newManager(t, Options{AllowPrivate: true, ToolTimeout: time.Hour})
	tb := m.Toolbox([]ServerConfig{srv.cfg})
	if _, _, err := tb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := tb.Call(t.Context(), "d__slow", nil); done <- err }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("tool never started")
	}
	srv.TS.CloseClientConnections() // the server's side of every connection drops
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Call succeeded although the connection died")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Call did not fail after the connection died")
	}
	// The broken client is replaced on next use.
	if res, err := tb.Call(t.Context(), "d__echo", json.RawMessage(`{"text":"back"}`)); err != nil || res.Text != "back" {
		t.Fatalf("Call after reconnect = %+v, %v", res, err)
	}
	if n := srv.Inits.Load(); n != 2 {
		t.Fatalf("initialize calls = %d, want 2 (one reconnect)", n)
	}
}

func TestManagerClose(t *testing.T) {
	t.Parallel()
	srv := startStreamable(t, "c", toolstest.EchoTool, nil)
	m := NewManager(Options{AllowPrivate: true})
	tb := m.Toolbox([]ServerConfig{srv.cfg})
	if _, _, err := tb.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = m.Close() }()
	}
	wg.Wait()
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := tb.List(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("List after Close: %v", err)
	}
	if _, err := tb.Call(t.Context(), "c__echo", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Call after Close: %v", err)
	}
}
