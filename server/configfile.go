package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/tools"
)

// ApplyEnvironment takes the providers' keys and base URLs from the environment
// (OPENAI_API_KEY, OPENAI_BASE_URL, … for each provider).
func (c *Config) ApplyEnvironment(getenv func(string) string) {
	c.Providers = agent.ProvidersFromEnv(getenv)
}

// fileConfig is the operator's config file (--config).
type fileConfig struct {
	Providers map[string]struct {
		BaseURL string `json:"base_url"`
		APIKey  string `json:"api_key"`
	} `json:"providers"`
	Prices map[string]struct {
		InputPerMTok  float64 `json:"input_per_mtok"`
		OutputPerMTok float64 `json:"output_per_mtok"`
	} `json:"prices"`
	MCPServers []struct {
		Slug      string            `json:"slug"`
		Transport string            `json:"transport"`
		URL       string            `json:"url"`
		Headers   map[string]string `json:"headers"`
		Command   string            `json:"command"`
		Args      []string          `json:"args"`
		Env       map[string]string `json:"env"`
	} `json:"mcp_servers"`
}

// ApplyConfigFile layers the operator's config file (--config) over c: provider URLs and
// keys, prices, and operator-declared MCP servers (the only place stdio servers come from).
func (c *Config) ApplyConfigFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	var fc fileConfig
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	for name, p := range fc.Providers {
		cur, ok := c.Providers[name]
		if !ok {
			return fmt.Errorf("config file: unknown provider %q", name)
		}
		if p.BaseURL != "" {
			cur.BaseURL = p.BaseURL
		}
		if p.APIKey != "" {
			cur.APIKey = p.APIKey
		}
		c.Providers[name] = cur
	}
	for model, p := range fc.Prices {
		c.Prices[model] = agent.Price{InputPerMTok: p.InputPerMTok, OutputPerMTok: p.OutputPerMTok}
	}
	for _, m := range fc.MCPServers {
		if m.Slug == "" {
			return errors.New("config file: every mcp_servers entry needs a slug")
		}
		switch m.Transport {
		case "stdio":
			if m.Command == "" {
				return fmt.Errorf("config file: stdio server %q needs a command", m.Slug)
			}
		case "streamable_http", "sse":
			if m.URL == "" {
				return fmt.Errorf("config file: server %q needs a url", m.Slug)
			}
		default:
			return fmt.Errorf("config file: server %q: transport must be stdio, streamable_http or sse", m.Slug)
		}
		c.OperatorServers = append(c.OperatorServers, tools.ServerConfig{
			ID: "op:" + m.Slug, Slug: m.Slug, Transport: m.Transport, URL: m.URL, Headers: m.Headers,
			Command: m.Command, Args: m.Args, Env: m.Env,
		})
	}
	return nil
}
