// Command upstream is the benchmark's stand-in for a model provider: an OpenAI-compatible
// chat-completions server built from agent/llmtest, with a configurable wait before the
// first byte, tokens per second, chunk size and answer length, on 127.0.0.1 only. With
// -tool it answers a request that offers tools (and has no tool result yet) with one call
// of the first offered tool; with -mcp-addr it also serves a one-tool MCP server ("add")
// over Streamable HTTP, for the tools scenario. With -tls it serves HTTPS (HTTP/2 by ALPN,
// as real providers do) with a fresh self-signed certificate written to -ca-out.
//
// It prints one line, "upstream <url> mcp <url|->", once it listens, and runs until
// SIGINT/SIGTERM.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/agentgate/agentgate/agent/llmtest"
)

func main() {
	var (
		addr    = flag.String("addr", "127.0.0.1:0", "listen address (loopback only)")
		ttfb    = flag.Duration("ttfb", 0, "wait before the first byte of every answer")
		tps     = flag.Float64("tps", 0, "tokens (words) per second while streaming; 0 = as fast as possible")
		chunk   = flag.Int("chunk", 1, "words per streamed chunk")
		words   = flag.Int("words", 20, "answer length in words")
		tool    = flag.Bool("tool", false, "call the first offered tool once per run before answering")
		mcpAddr = flag.String("mcp-addr", "", "also serve an MCP server with one tool (add) here; empty = off")
		useTLS  = flag.Bool("tls", false, "serve HTTPS (HTTP/2) with a self-signed certificate")
		caOut   = flag.String("ca-out", "", "with -tls: write the certificate (PEM) here, for SSL_CERT_FILE")
	)
	flag.Parse()
	if err := run(*addr, *ttfb, *tps, *chunk, *words, *tool, *mcpAddr, *useTLS, *caOut); err != nil {
		log.Fatal("upstream: ", err)
	}
}

func run(addr string, ttfb time.Duration, tps float64, chunk, words int, tool bool, mcpAddr string, useTLS bool, caOut string) error {
	if chunk < 1 || words < 1 {
		return fmt.Errorf("-chunk and -words must be ≥ 1")
	}
	if h, _, err := net.SplitHostPort(addr); err != nil || (h != "127.0.0.1" && h != "::1" && h != "localhost") {
		return fmt.Errorf("-addr must be on loopback, got %q", addr)
	}
	chunks := answer(words, chunk)
	var pace time.Duration
	if tps > 0 {
		pace = time.Duration(float64(chunk) / tps * float64(time.Second))
	}
	handler := func(req llmtest.Request) llmtest.Reply {
		if tool && len(req.Tools) > 0 && !hasToolResult(req) {
			return llmtest.Reply{Delay: ttfb, ToolCalls: []llmtest.ToolCall{{Name: req.Tools[0].Name, Arguments: `{"a":2,"b":3}`}}}
		}
		return llmtest.Reply{Chunks: chunks, Delay: ttfb, Pace: pace}
	}
	srv, err := llmtest.Start(addr, handler, llmtest.WithoutRecording())
	if err != nil {
		return err
	}
	defer srv.Close()
	url := srv.URL()
	if useTLS {
		tlsURL, stop, err := serveTLS(srv.Handler(), caOut)
		if err != nil {
			return err
		}
		defer stop()
		url = tlsURL
	}
	mcpURL := "-"
	if mcpAddr != "" {
		u, stop, err := serveMCP(mcpAddr)
		if err != nil {
			return err
		}
		defer stop()
		mcpURL = u
	}
	fmt.Printf("upstream %s mcp %s\n", url, mcpURL)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

func hasToolResult(req llmtest.Request) bool {
	for _, m := range req.Messages {
		if m.Role == "tool" {
			return true
		}
	}
	return false
}

// answer is words words in chunks of chunk words (every chunk but the first starts with a space).
func answer(words, chunk int) []string {
	var out []string
	var b strings.Builder
	for i := 0; i < words; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("w")
		b.WriteString(strconv.Itoa(i % 100))
		if (i+1)%chunk == 0 || i == words-1 {
			out = append(out, b.String())
			b.Reset()
		}
	}
	return out
}

// serveMCP serves an MCP server with the tool add(a, b) over Streamable HTTP at /mcp.
func serveMCP(addr string) (string, func(), error) {
	s := mcpserver.NewMCPServer("bench-tools", "1.0.0", mcpserver.WithToolCapabilities(true))
	s.AddTool(mcp.NewTool("add", mcp.WithDescription("adds two numbers"), mcp.WithNumber("a"), mcp.WithNumber("b")),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(strconv.Itoa(req.GetInt("a", 0) + req.GetInt("b", 0))), nil
		})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcpserver.NewStreamableHTTPServer(s))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/mcp", func() { _ = hs.Close(); <-done }, nil
}

// serveTLS serves h over HTTPS (HTTP/2 by ALPN) on a new loopback port with a fresh
// self-signed certificate for 127.0.0.1, written as PEM to caOut.
func serveTLS(h http.Handler, caOut string) (string, func(), error) {
	if caOut == "" {
		return "", nil, fmt.Errorf("-tls needs -ca-out")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "agentgate bench upstream"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(caOut, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		// Many concurrent runs share few connections.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1000},
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.ServeTLS(ln, "", "") }()
	return "https://" + ln.Addr().String() + "/v1", func() { _ = hs.Close(); <-done }, nil
}
