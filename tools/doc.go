// Package tools owns agentgate's MCP toolbox: it connects to the MCP servers
// of a workspace (and the operator's stdio/HTTP servers) through mcp-go, keeps
// one initialised client per server configuration and reuses it across runs,
// caches tools/list per server, merges the tools of many servers under
// provider-safe names (<server_slug>__<tool>), routes tool calls back to the
// owning server, flattens results to text, and enforces the outbound egress
// policy for HTTP transports (CheckURL at connect time, and a dialer that
// refuses disallowed addresses so DNS rebinding cannot bypass it).
//
// The package imports only libraries. It must not import agent, db, server or
// stream: the server package adapts Toolbox to the agent's own interface.
//
// Secrets: header values of a ServerConfig are credentials. They are sent to
// the MCP server and nowhere else — never logged and never part of an error.
package tools
