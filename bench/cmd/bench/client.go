//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// newClient returns an HTTP client for many concurrent requests to one host.
func newClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = 20000
	t.DisableCompression = true
	return &http.Client{Transport: t}
}

// api calls the gateway's JSON API.
type api struct {
	base  string
	token string
	c     *http.Client
}

func (a *api) call(ctx context.Context, method, path string, body any, out any) error {
	raw, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	res, err := a.c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// endpoint is an agent endpoint the bench created.
type endpoint struct{ slug, key string }

func (a *api) setup(ctx context.Context) error {
	var out struct {
		Token string `json:"token"`
	}
	if err := a.call(ctx, "POST", "/api/auth/register", map[string]string{"email": "bench@example.com", "password": "bench-password"}, &out); err != nil {
		return err
	}
	a.token = out.Token
	return nil
}

func (a *api) endpoint(ctx context.Context, slug, upstream string, extra map[string]any) (endpoint, error) {
	body := map[string]any{
		"name": slug, "slug": slug, "system_prompt": "You are a benchmark.", "llm_provider": "custom",
		"llm_model": "bench-model", "llm_base_url": upstream, "timeout_ms": 300000,
	}
	for k, v := range extra {
		body[k] = v
	}
	var out struct {
		APIKey string `json:"api_key"`
	}
	if err := a.call(ctx, "POST", "/api/agent-endpoints", body, &out); err != nil {
		return endpoint{}, err
	}
	return endpoint{slug: slug, key: out.APIKey}, nil
}

// toolWorkspace creates a workspace with the MCP server at mcpURL and returns its id.
func (a *api) toolWorkspace(ctx context.Context, mcpURL string) (string, error) {
	var ws struct {
		Workspace struct {
			ID string `json:"id"`
		} `json:"workspace"`
	}
	if err := a.call(ctx, "POST", "/api/workspaces", map[string]any{"name": "bench-tools"}, &ws); err != nil {
		return "", err
	}
	err := a.call(ctx, "POST", "/api/workspaces/"+ws.Workspace.ID+"/servers",
		map[string]any{"name": "calc", "slug": "calc", "transport": "streamable_http", "url": mcpURL}, nil)
	return ws.Workspace.ID, err
}

const runInput = `{"input":"hello bench"}`

// gatewayRun is one non-streaming run through the gateway.
func gatewayRun(ctx context.Context, c *http.Client, base string, ep endpoint, due time.Time) sample {
	s := sample{target: "gateway", overheadMs: -1}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/api/run/"+ep.slug, strings.NewReader(runInput))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ep.key)
	res, err := c.Do(req)
	if err != nil {
		s.err = err.Error()
		return s
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	s.lat = time.Since(due)
	switch {
	case err != nil:
		s.err = err.Error()
	case res.StatusCode != 200:
		s.err = fmt.Sprintf("status %d: %.200s", res.StatusCode, body)
	}
	if v, err := strconv.ParseFloat(res.Header.Get("X-Agentgate-Overhead-Ms"), 64); err == nil {
		s.overheadMs = v
	}
	return s
}

// upstreamBody is what the gateway sends its model for runInput (system prompt, input,
// streaming with usage), so a direct request asks the upstream for the same work.
const upstreamBody = `{"model":"bench-model","messages":[{"role":"system","content":"You are a benchmark."},` +
	`{"role":"user","content":"hello bench"}],"stream":true,"stream_options":{"include_usage":true}}`

// directRun is the same model call sent straight to the upstream, read to its end.
func directRun(ctx context.Context, c *http.Client, upstream string, due time.Time) sample {
	s := sample{target: "direct", overheadMs: -1}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := postOK(ctx, c, upstream+"/chat/completions", upstreamBody)
	if err != nil {
		s.err = err.Error()
		return s
	}
	defer res.Body.Close()
	s.ttft = -1
	br := bufio.NewReader(res.Body)
	last := time.Time{}
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, []byte(`data: {`)) && bytes.Contains(line, []byte(`"delta":{"content":"`)) {
			last = s.token(due, last)
		}
		if bytes.HasPrefix(line, []byte("data: [DONE]")) {
			s.lat = time.Since(due)
			return s
		}
		if err != nil {
			s.err = "stream ended before [DONE]: " + err.Error()
			return s
		}
	}
}

// gatewayStream is one streaming run through the gateway, with its first-token time and
// the gaps between tokens.
func gatewayStream(ctx context.Context, c *http.Client, base string, ep endpoint, due time.Time) sample {
	s := sample{target: "gateway", overheadMs: -1, ttft: -1}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := postOK(ctx, c, base+"/api/run/"+ep.slug, runInput, "Accept", "text/event-stream", "Authorization", "Bearer "+ep.key)
	if err != nil {
		s.err = err.Error()
		return s
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	var last time.Time
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case bytes.Equal(line, []byte("event: token\n")):
			last = s.token(due, last)
		case bytes.Equal(line, []byte("event: done\n")):
			s.lat = time.Since(due)
			return s
		case bytes.Equal(line, []byte("event: error\n")):
			s.err = "error event"
			return s
		}
		if err != nil {
			s.err = "stream ended before its terminal event: " + err.Error()
			return s
		}
	}
}

// postOK posts a JSON body (headers alternate name, value) and returns the response when its
// status is 200; otherwise the error says what happened (the body is closed).
func postOK(ctx context.Context, c *http.Client, url, body string, headers ...string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != 200 {
		res.Body.Close()
		return nil, fmt.Errorf("status %d", res.StatusCode)
	}
	return res, nil
}

// token records a token arriving now: the first sets the time to first token (from due),
// later ones the gap since last. It returns now, the new last.
func (s *sample) token(due, last time.Time) time.Time {
	now := time.Now()
	if s.ttft < 0 {
		s.ttft = now.Sub(due)
	} else {
		s.gaps = append(s.gaps, now.Sub(last))
	}
	return now
}
