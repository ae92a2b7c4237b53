package tools

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"slices"
	"sync"
	"time"
)

// Transport names accepted in ServerConfig.Transport.
const (
	TransportStreamableHTTP = "streamable_http"
	TransportSSE            = "sse"
	TransportStdio          = "stdio"
)

// Defaults applied by NewManager to zero Options fields.
const (
	DefaultToolTimeout    = 30 * time.Second
	DefaultListTTL        = 5 * time.Minute
	DefaultConnectTimeout = 10 * time.Second
)

// ErrClosed is returned by every operation on a Manager after Close.
var ErrClosed = errors.New("tools: manager closed")

// ErrUnknownTool is wrapped by Call's error for a name the toolbox does not
// expose.
var ErrUnknownTool = errors.New("unknown tool")

// ServerConfig describes one MCP server a toolbox may use.
type ServerConfig struct {
	// ID is the server's stable identity: a workspace server id, or
	// "op:"+slug for operator servers. One client is kept per ID.
	ID string
	// Slug prefixes the server's tool names (<slug>__<tool>).
	Slug string
	// Transport is TransportStreamableHTTP, TransportSSE or TransportStdio.
	Transport string
	// URL is the endpoint of an HTTP transport.
	URL string
	// Headers are sent with every HTTP request. Values are secrets: they are
	// never logged nor put in errors.
	Headers map[string]string
	// Command, Args and Env start a stdio server (operator config only). The
	// child gets a minimal environment (PATH, HOME, …) plus Env, never the
	// gateway's own environment.
	Command string
	Args    []string
	Env     map[string]string
	// Version changes whenever the configuration changes (e.g. updated_at);
	// a cached client with another Version is replaced.
	Version string
}

// fingerprint identifies the configuration a client was built from, so a
// changed config replaces the client even if Version was not bumped. Secret
// values only enter through the hash.
func (c ServerConfig) fingerprint() string {
	h := sha256.New()
	w := func(s string) { _, _ = io.WriteString(h, s); _, _ = h.Write([]byte{0}) }
	w(c.Version)
	w(c.Slug)
	w(c.Transport)
	w(c.URL)
	w(c.Command)
	for _, a := range c.Args {
		w(a)
	}
	for _, m := range []map[string]string{c.Headers, c.Env} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w("--")
		for _, k := range keys {
			w(k)
			w(m[k])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Options configure a Manager. Zero values take the documented defaults.
type Options struct {
	// ToolTimeout bounds one tool call (default 30s), within the caller's ctx.
	ToolTimeout time.Duration
	// ListTTL is how long a server's tools/list answer is reused (default 5m).
	ListTTL time.Duration
	// ConnectTimeout bounds connecting and initialising a server (default 10s).
	ConnectTimeout time.Duration
	// AllowPrivate lets HTTP transports reach loopback, private, link-local
	// and other non-public addresses (egress policy).
	AllowPrivate bool
	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
	// ClientName and ClientVersion identify agentgate in the MCP handshake
	// (defaults "agentgate" and "dev").
	ClientName, ClientVersion string
}

// Manager owns the MCP clients of the process: one initialised client per
// server config, created lazily, shared by every Toolbox and replaced when it
// breaks or its config changes. It is safe for concurrent use.
type Manager struct {
	opts Options
	log  *slog.Logger
	http *http.Client
	now  func() time.Time // the list cache's clock; tests replace it

	// ctx is the parent of every connection; Close cancels it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	sessions map[string]*session // by ServerConfig.ID
	closed   bool
	wg       sync.WaitGroup // connect and retire goroutines

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// NewManager returns a Manager with opts (zero fields take defaults).
// Call Close to end its sessions and stdio children.
func NewManager(opts Options) *Manager {
	if opts.ToolTimeout <= 0 {
		opts.ToolTimeout = DefaultToolTimeout
	}
	if opts.ListTTL <= 0 {
		opts.ListTTL = DefaultListTTL
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.ClientName == "" {
		opts.ClientName = "agentgate"
	}
	if opts.ClientVersion == "" {
		opts.ClientVersion = "dev"
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Manager{
		opts:     opts,
		log:      log,
		http:     newHTTPClient(opts),
		now:      time.Now,
		ctx:      ctx,
		cancel:   cancel,
		sessions: make(map[string]*session),
		done:     make(chan struct{}),
	}
}

// Toolbox returns a toolbox over servers for one run. It is cheap: clients are
// shared through the Manager and connected on first use.
func (m *Manager) Toolbox(servers []ServerConfig) *Toolbox {
	return &Toolbox{m: m, servers: slices.Clone(servers)}
}

// session returns the ready session for cfg, connecting it if needed. Only
// one connection attempt runs per server at a time; concurrent callers share
// it. A broken session, or one built from another config, is replaced.
func (m *Manager) session(ctx context.Context, cfg ServerConfig) (*session, error) {
	fp := cfg.fingerprint()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	s := m.sessions[cfg.ID]
	if s != nil && (s.fp != fp || s.isBroken()) {
		delete(m.sessions, cfg.ID)
		m.retireLocked(s)
		s = nil
	}
	if s == nil {
		s = newSession(m, cfg, fp)
		m.sessions[cfg.ID] = s
		m.wg.Add(1)
		go s.connect()
	}
	m.mu.Unlock()

	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	if s.err != nil {
		return nil, s.err
	}
	return s, nil
}

// drop removes s from the table if it is still the current session of its
// server (it failed to connect or broke).
func (m *Manager) drop(s *session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions[s.cfg.ID] == s {
		delete(m.sessions, s.cfg.ID)
		if !m.closed {
			m.retireLocked(s)
		}
	}
}

// retireLocked closes s in the background once its connect attempt is over.
// m.mu must be held and m.closed false (Close retires the rest itself).
func (m *Manager) retireLocked(s *session) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		<-s.ready // bounded: connect ends within ConnectTimeout or on Close
		if err := s.close(); err != nil {
			m.log.Debug("mcp server closed with error", "mcp_server", s.cfg.Slug, "err", err)
		}
	}()
}

// Forget drops the client of serverID (the server was deleted or changed);
// the next use connects afresh. In-flight calls on the old client fail.
func (m *Manager) Forget(serverID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if s := m.sessions[serverID]; s != nil {
		delete(m.sessions, serverID)
		m.retireLocked(s)
	}
}

// Close ends every session: HTTP sessions are closed (DELETE where the
// server has one); a stdio child gets its stdin closed, SIGTERM after 2s,
// SIGKILL 3s later (mcp-go's ladder), is reaped, and what is left of its
// process group is killed. Sessions close in parallel. Close is idempotent;
// every call waits until the shutdown is complete and returns the same error.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		all := make([]*session, 0, len(m.sessions))
		for _, s := range m.sessions {
			all = append(all, s)
		}
		clear(m.sessions)
		m.mu.Unlock()

		// Abort connects in flight; established sessions do not depend on ctx
		// for an orderly close.
		m.cancel(ErrClosed)

		var (
			errMu sync.Mutex
			errs  []error
		)
		for _, s := range all {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				<-s.ready
				if err := s.close(); err != nil {
					var exit *exec.ExitError
					if !errors.As(err, &exit) { // a child that exited is fine
						errMu.Lock()
						errs = append(errs, err)
						errMu.Unlock()
					}
				}
			}()
		}
		m.wg.Wait()
		m.http.CloseIdleConnections()
		m.closeErr = errors.Join(errs...)
		close(m.done)
	})
	<-m.done
	return m.closeErr
}
