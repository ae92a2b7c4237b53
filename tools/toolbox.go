package tools

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// Tool is one tool as exposed to the model.
type Tool struct {
	// Name is the exposed name: ToolName(server slug, tool), made unique
	// within the toolbox.
	Name        string
	Description string
	// InputSchema is the tool's JSON Schema for its arguments (an object
	// schema).
	InputSchema json.RawMessage
	// Server is the slug of the owning server.
	Server string
	// Original is the tool's name on its server.
	Original string
}

// Result is a tool call's outcome, flattened to text.
type Result struct {
	// Text joins the text of every content item; other content is summarised
	// (e.g. "[image image/png 1234 bytes]"). It is not truncated.
	Text string
	// IsError is set when the server reported the call as failed (MCP
	// isError); the text then says why.
	IsError bool
}

type route struct {
	cfg      ServerConfig
	original string
}

// Toolbox is the set of tools of one run: the merged tools of its servers.
// List and Call are safe for concurrent use. A toolbox holds no connection of
// its own; it needs no Close.
type Toolbox struct {
	m       *Manager
	servers []ServerConfig

	mu     sync.Mutex
	routes map[string]route // by exposed name, from the last List
}

// List returns the tools of every server, merged and named, plus one warning
// per server that could not be reached or listed ("mcp server \"slug\"
// unavailable: …"); the others are still listed. The error is non-nil only
// when ctx ended or the Manager is closed. Servers are listed concurrently;
// answers are cached per server (ListTTL, list_changed).
func (tb *Toolbox) List(ctx context.Context) ([]Tool, []string, error) {
	type answer struct {
		tools []mcp.Tool
		err   error
	}
	answers := make([]answer, len(tb.servers))
	var wg sync.WaitGroup
	for i, cfg := range tb.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t, err := tb.m.listServer(ctx, cfg)
			answers[i] = answer{t, err}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, context.Cause(ctx)
	}

	var (
		tools    []Tool
		bases    []string
		warnings []string
		routes   = make(map[string]route)
	)
	for i, cfg := range tb.servers {
		a := answers[i]
		if errors.Is(a.err, ErrClosed) {
			return nil, nil, ErrClosed
		}
		if a.err != nil {
			warnings = append(warnings, fmt.Sprintf("mcp server %q unavailable: %v", cfg.Slug, a.err))
			continue
		}
		sorted := slices.Clone(a.tools)
		slices.SortStableFunc(sorted, func(x, y mcp.Tool) int { return strings.Compare(x.Name, y.Name) })
		for _, t := range sorted {
			tools = append(tools, Tool{
				Description: t.Description,
				InputSchema: inputSchema(t),
				Server:      cfg.Slug,
				Original:    t.Name,
			})
			bases = append(bases, ToolName(cfg.Slug, t.Name))
		}
	}
	names := uniqueNames(bases)
	j := 0
	for i, cfg := range tb.servers {
		if answers[i].err != nil {
			continue
		}
		for range answers[i].tools {
			tools[j].Name = names[j]
			routes[names[j]] = route{cfg: cfg, original: tools[j].Original}
			j++
		}
	}

	tb.mu.Lock()
	tb.routes = routes
	tb.mu.Unlock()
	return tools, warnings, nil
}

// listServer lists one server's tools, reconnecting once if the cached
// client turns out to be broken (listing is always safe to repeat).
func (m *Manager) listServer(ctx context.Context, cfg ServerConfig) ([]mcp.Tool, error) {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var s *session
		s, err = m.session(ctx, cfg)
		if err != nil {
			return nil, err
		}
		var tools []mcp.Tool
		tools, err = s.listTools(ctx)
		if err == nil || !s.isBroken() || ctx.Err() != nil {
			return tools, err
		}
	}
	return nil, err
}

// inputSchema renders a tool's argument schema, defaulting to an empty
// object schema, which is what model providers require.
func inputSchema(t mcp.Tool) json.RawMessage {
	if len(t.RawInputSchema) > 0 {
		return slices.Clone(t.RawInputSchema)
	}
	s := t.InputSchema
	if s.Type == "" {
		s.Type = "object"
	}
	if s.Properties == nil {
		s.Properties = map[string]any{}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return json.RawMessage(`{"type":"object","properties":{}}`)
	}
	return b
}

// Call runs the tool exposed as name with args (a JSON object; empty or null
// means no arguments) on its server, bounded by ToolTimeout within ctx. A
// tool that reports failure gives Result{IsError: true} and a nil error; an
// unknown name, invalid arguments, a transport failure or a timeout give an
// error. If List has not run yet, Call lists first to learn the names.
func (tb *Toolbox) Call(ctx context.Context, name string, args json.RawMessage) (Result, error) {
	arguments, err := callArguments(args)
	if err != nil {
		return Result{}, err
	}
	tb.mu.Lock()
	routes := tb.routes
	tb.mu.Unlock()
	if routes == nil {
		if _, _, err := tb.List(ctx); err != nil {
			return Result{}, err
		}
		tb.mu.Lock()
		routes = tb.routes
		tb.mu.Unlock()
	}
	r, ok := routes[name]
	if !ok {
		return Result{}, fmt.Errorf("%w %q", ErrUnknownTool, name)
	}

	ctx, cancel := context.WithTimeoutCause(ctx, tb.m.opts.ToolTimeout,
		fmt.Errorf("timed out after %s: %w", tb.m.opts.ToolTimeout, context.DeadlineExceeded))
	defer cancel()

	req := mcp.CallToolRequest{Params: mcp.CallToolParams{Name: r.original, Arguments: arguments}}
	for attempt := 0; ; attempt++ {
		s, err := tb.m.session(ctx, r.cfg)
		if err != nil {
			return Result{}, fmt.Errorf("mcp server %q unavailable: %w", r.cfg.Slug, err)
		}
		res, err := s.client.CallTool(ctx, req)
		if err == nil {
			return flatten(res), nil
		}
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("tool %q: %w", name, context.Cause(ctx))
		}
		s.noteErr(ctx, err)
		// Only an expired HTTP session is safe to retry: the server did not
		// run the call. Anything else may have had effects.
		if attempt == 0 && errors.Is(err, transport.ErrSessionTerminated) {
			continue
		}
		return Result{}, fmt.Errorf("tool %q: %w", name, s.redact(err))
	}
}

// callArguments checks that args is a JSON object (or empty/null).
func callArguments(args json.RawMessage) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(args)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return json.RawMessage(`{}`), nil
	}
	if !json.Valid(trimmed) {
		return nil, errors.New("tool arguments are not valid JSON")
	}
	if trimmed[0] != '{' {
		return nil, errors.New("tool arguments must be a JSON object")
	}
	return json.RawMessage(trimmed), nil
}

// flatten turns a tool result into text: text items and embedded text
// resources verbatim, other content as a one-line summary, structured content
// as JSON when there is nothing else. Items are joined with newlines.
func flatten(res *mcp.CallToolResult) Result {
	if res == nil {
		return Result{}
	}
	parts := make([]string, 0, len(res.Content))
	for _, c := range res.Content {
		parts = append(parts, contentText(c))
	}
	if len(parts) == 0 {
		switch {
		case len(res.RawStructuredContent) > 0:
			parts = append(parts, string(res.RawStructuredContent))
		case res.StructuredContent != nil:
			if b, err := json.Marshal(res.StructuredContent); err == nil {
				parts = append(parts, string(b))
			}
		}
	}
	return Result{Text: strings.Join(parts, "\n"), IsError: res.IsError}
}

func contentText(c mcp.Content) string {
	switch v := c.(type) {
	case mcp.TextContent:
		return v.Text
	case *mcp.TextContent:
		return v.Text
	case mcp.ImageContent:
		return binarySummary("image", v.MIMEType, v.Data)
	case *mcp.ImageContent:
		return binarySummary("image", v.MIMEType, v.Data)
	case mcp.AudioContent:
		return binarySummary("audio", v.MIMEType, v.Data)
	case *mcp.AudioContent:
		return binarySummary("audio", v.MIMEType, v.Data)
	case mcp.ResourceLink:
		return resourceLinkText(v)
	case *mcp.ResourceLink:
		return resourceLinkText(*v)
	case mcp.EmbeddedResource:
		return resourceText(v.Resource)
	case *mcp.EmbeddedResource:
		return resourceText(v.Resource)
	default:
		return fmt.Sprintf("[%T content]", c)
	}
}

func binarySummary(kind, mime, data string) string {
	return "[" + kind + " " + mime + " " + strconv.Itoa(base64.StdEncoding.DecodedLen(len(data))-padding(data)) + " bytes]"
}

// padding counts the '=' that DecodedLen over-counts.
func padding(data string) int {
	return len(data) - len(strings.TrimRight(data, "="))
}

func resourceLinkText(l mcp.ResourceLink) string {
	s := "[resource " + l.URI
	if l.Name != "" {
		s += " " + strconv.Quote(l.Name)
	}
	if l.MIMEType != "" {
		s += " " + l.MIMEType
	}
	return s + "]"
}

func resourceText(r mcp.ResourceContents) string {
	switch v := r.(type) {
	case mcp.TextResourceContents:
		return v.Text
	case *mcp.TextResourceContents:
		return v.Text
	case mcp.BlobResourceContents:
		return binarySummary("resource "+v.URI, v.MIMEType, v.Blob)
	case *mcp.BlobResourceContents:
		return binarySummary("resource "+v.URI, v.MIMEType, v.Blob)
	default:
		return "[resource]"
	}
}
