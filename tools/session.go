package tools

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// session is one initialised MCP client for one server config. It is created
// by Manager.session, connected by its own goroutine, and closed by the
// Manager (retire or Close) — never by a toolbox.
type session struct {
	m   *Manager
	cfg ServerConfig
	fp  string
	log *slog.Logger

	ready  chan struct{} // closed when connect is over; then client/err are fixed
	client *client.Client
	err    error

	broken atomic.Bool

	cmdMu sync.Mutex
	cmd   *exec.Cmd // the stdio child, once started

	closeOnce sync.Once
	closeErr  error

	// listSem serialises tools/list refreshes; a waiter can still give up on
	// its own ctx.
	listSem  chan struct{}
	changes  atomic.Uint64 // bumped by notifications/tools/list_changed
	tools    []mcp.Tool    // guarded by listSem
	listedAt time.Time     // guarded by listSem
	listGen  uint64        // changes value the cache was filled at; guarded by listSem
}

func newSession(m *Manager, cfg ServerConfig, fp string) *session {
	return &session{
		m:       m,
		cfg:     cfg,
		fp:      fp,
		log:     m.log.With("mcp_server", cfg.Slug),
		ready:   make(chan struct{}),
		listSem: make(chan struct{}, 1),
	}
}

func (s *session) isBroken() bool { return s.broken.Load() }

// connect dials and initialises the server. It runs on its own goroutine,
// owned by the Manager (wg), bounded by ConnectTimeout and the Manager's ctx.
func (s *session) connect() {
	defer s.m.wg.Done()
	ctx, cancel := context.WithTimeoutCause(s.m.ctx, s.m.opts.ConnectTimeout,
		fmt.Errorf("connect timed out after %s: %w", s.m.opts.ConnectTimeout, context.DeadlineExceeded))
	defer cancel()
	c, err := s.dial(ctx)
	if err != nil {
		if cerr := context.Cause(ctx); cerr != nil && ctx.Err() != nil {
			err = cerr
		}
		s.err = s.redact(err)
		close(s.ready)
		s.m.drop(s)
		s.log.Debug("mcp server connect failed", "err", s.err)
		return
	}
	s.client = c
	close(s.ready)
}

// dial builds, starts and initialises the client for s.cfg. The client's
// long-lived parts (SSE stream, listening GET stream, stdio reader) hang off
// the Manager's ctx, not the caller's, because the client outlives this call.
func (s *session) dial(ctx context.Context) (*client.Client, error) {
	var (
		tr  transport.Interface
		err error
	)
	switch s.cfg.Transport {
	case TransportStreamableHTTP, TransportSSE:
		if err := CheckURL(ctx, s.cfg.URL, s.m.opts.AllowPrivate); err != nil {
			return nil, err
		}
		headers := make(map[string]string, len(s.cfg.Headers))
		for k, v := range s.cfg.Headers {
			headers[k] = v
		}
		if s.cfg.Transport == TransportSSE {
			tr, err = transport.NewSSE(s.cfg.URL,
				transport.WithHTTPClient(s.m.http),
				transport.WithHeaders(headers),
				transport.WithEndpointTimeout(s.m.opts.ConnectTimeout),
				transport.WithSSELogger(s.libraryLogger()))
		} else {
			tr, err = transport.NewStreamableHTTP(s.cfg.URL,
				transport.WithHTTPBasicClient(s.m.http),
				transport.WithHTTPHeaders(headers),
				// The standalone GET stream is where list_changed arrives
				// between requests.
				transport.WithContinuousListening(),
				transport.WithHTTPLogger(s.libraryLogger()))
		}
	case TransportStdio:
		if s.cfg.Command == "" {
			return nil, errors.New("stdio server has no command")
		}
		tr = transport.NewStdioWithOptions(s.cfg.Command, childEnv(s.cfg.Env), s.cfg.Args,
			transport.WithCommandFunc(s.command),
			transport.WithCommandLogger(s.libraryLogger()))
	default:
		return nil, fmt.Errorf("unsupported transport %q", s.cfg.Transport)
	}
	if err != nil {
		return nil, err
	}

	// Protocol revisions up to 2025-11-25 (the initialize handshake and
	// sessions) are what servers speak today; pinning one keeps list_changed
	// on the transport's own stream for every transport.
	c := client.NewClient(tr, client.WithProtocolVersion(mcp.LATEST_LEGACY_PROTOCOL_VERSION))
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == mcp.MethodNotificationToolsListChanged {
			s.changes.Add(1) // called on the transport's reader: never block
		}
	})
	c.OnConnectionLost(func(error) { s.broken.Store(true) })
	// Start gets the Manager's ctx (the SSE stream lives on it) and is
	// bounded here by the connect ctx: an SSE server that accepts but never
	// answers is cut off by closing the client, which cancels the stream.
	started := make(chan error, 1)
	go func() { started <- c.Start(s.m.ctx) }()
	select {
	case err = <-started:
	case <-ctx.Done():
		_ = s.closeClient(c)
		<-started
		return nil, fmt.Errorf("start: %w", context.Cause(ctx))
	}
	if err != nil {
		_ = s.closeClient(c)
		return nil, fmt.Errorf("start: %w", err)
	}
	// Initialize honours ctx on every transport, so a server that never
	// answers cannot hold the connect past ConnectTimeout.
	if _, err := c.Initialize(ctx, mcp.InitializeRequest{Params: mcp.InitializeParams{
		ProtocolVersion: mcp.LATEST_LEGACY_PROTOCOL_VERSION,
		ClientInfo:      mcp.Implementation{Name: s.m.opts.ClientName, Version: s.m.opts.ClientVersion},
	}}); err != nil {
		_ = s.closeClient(c)
		return nil, fmt.Errorf("initialize: %w", err)
	}
	return c, nil
}

// command builds the stdio child: no ctx kill (Close runs the graceful
// ladder), its own process group so the whole tree can be ended.
func (s *session) command(_ context.Context, command string, env, args []string) (*exec.Cmd, error) {
	cmd := exec.Command(command, args...)
	cmd.Env = env
	setProcessGroup(cmd)
	s.cmdMu.Lock()
	s.cmd = cmd
	s.cmdMu.Unlock()
	return cmd, nil
}

// childEnvKeys are inherited from the gateway by stdio children; everything
// else (API keys, database URLs, secrets) stays in the gateway.
var childEnvKeys = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LC_ALL", "TMPDIR", "TZ"}

func childEnv(extra map[string]string) []string {
	env := make([]string, 0, len(childEnvKeys)+len(extra))
	for _, k := range childEnvKeys {
		if _, override := extra[k]; override {
			continue
		}
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if runtime.GOOS == "windows" {
		env = append(env, "SYSTEMROOT="+os.Getenv("SYSTEMROOT"))
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	return env
}

// closeClient closes c and, for stdio, makes sure the child's whole process
// group is gone (mcp-go's Close already closes stdin, then SIGTERMs, then
// SIGKILLs the child and reaps it; grandchildren are ended here).
func (s *session) closeClient(c *client.Client) error {
	err := c.Close()
	s.cmdMu.Lock()
	cmd := s.cmd
	s.cmdMu.Unlock()
	if cmd != nil && cmd.Process != nil {
		killProcessGroup(cmd.Process.Pid)
	}
	return err
}

// close ends the session once; it must only be called after ready is closed.
func (s *session) close() error {
	s.closeOnce.Do(func() {
		s.broken.Store(true)
		if s.client != nil {
			s.closeErr = s.closeClient(s.client)
		}
	})
	return s.closeErr
}

// noteErr marks the session broken when err is a transport failure that was
// not caused by the caller's ctx ending (a timed-out call leaves the
// connection usable). JSON-RPC errors from the server never break it.
func (s *session) noteErr(ctx context.Context, err error) {
	if err == nil || ctx.Err() != nil {
		return
	}
	var te *transport.Error
	if errors.As(err, &te) || errors.Is(err, transport.ErrSessionTerminated) || errors.Is(err, transport.ErrTransportClosed) {
		s.broken.Store(true)
		s.m.drop(s)
	}
}

// listTools returns the server's tools, from the cache while it is fresh and
// no list_changed arrived since it was filled.
func (s *session) listTools(ctx context.Context) ([]mcp.Tool, error) {
	select {
	case s.listSem <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	defer func() { <-s.listSem }()

	gen := s.changes.Load()
	now := s.m.now()
	if s.tools != nil && s.listGen == gen && now.Sub(s.listedAt) < s.m.opts.ListTTL {
		return s.tools, nil
	}
	res, err := s.client.ListTools(ctx, mcp.ListToolsRequest{}) // follows nextCursor
	if err != nil {
		s.noteErr(ctx, err)
		return nil, s.redact(err)
	}
	tools := res.Tools
	if tools == nil {
		tools = []mcp.Tool{}
	}
	s.tools, s.listedAt, s.listGen = tools, now, gen
	return tools, nil
}

// redact returns err with the server's secrets removed from its message:
// header values, and the URL's query and credentials. errors.Is/As still see
// the original chain.
func (s *session) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if s.cfg.URL != "" {
		if u, perr := url.Parse(s.cfg.URL); perr == nil && (u.RawQuery != "" || u.User != nil || u.Fragment != "") {
			safe := *u
			safe.User, safe.RawQuery, safe.Fragment, safe.ForceQuery = nil, "", "", false
			msg = strings.ReplaceAll(msg, s.cfg.URL, safe.String())
			if u.RawQuery != "" {
				msg = strings.ReplaceAll(msg, u.RawQuery, "[redacted]")
			}
		}
	}
	for _, v := range s.cfg.Headers {
		if v != "" {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	for _, v := range s.cfg.Env {
		if len(v) >= 4 {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
