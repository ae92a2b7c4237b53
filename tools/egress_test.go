package tools

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/agentgate/agentgate/tools/toolstest"
)

func TestCheckURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url          string
		allowPrivate bool
		wantErr      string // "" = allowed
	}{
		{"https://8.8.8.8/mcp", false, ""},
		{"http://[2606:4700::1111]/", false, ""},
		{"http://127.0.0.1:8080/mcp", false, "loopback"},
		{"http://127.0.0.1:8080/mcp", true, ""},
		{"http://localhost:1/", false, "loopback"}, // a name resolving to loopback
		{"http://[::1]/", false, "loopback"},
		{"http://[::ffff:127.0.0.1]/", false, "loopback"},
		{"http://10.1.2.3/", false, "private"},
		{"http://172.16.0.1/", false, "private"},
		{"http://192.168.1.1/", false, "private"},
		{"http://192.168.1.1/", true, ""},
		{"http://[fd00::1]/", false, "private"},
		{"http://169.254.169.254/latest", false, "link-local"},
		{"http://[fe80::1]/", false, "link-local"},
		{"http://0.0.0.0/", false, "unspecified"},
		{"http://[::]/", false, "unspecified"},
		{"http://224.0.0.1/", false, "multicast"},
		{"http://100.64.0.1/", false, "carrier-grade NAT"},
		{"http://[64:ff9b::a00:1]/", false, "private"}, // NAT64 of 10.0.0.1
		{"ftp://8.8.8.8/", false, "scheme"},
		{"file:///etc/passwd", false, "scheme"},
		{"http:///nohost", false, "no host"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			err := CheckURL(t.Context(), tc.url, tc.allowPrivate)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckURL: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckURL = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

// The dialer refuses a loopback address even when the URL was never checked
// (a name that passed CheckURL and later re-resolves to loopback).
func TestDialerRefusesDisallowedAddresses(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(ts.Close)
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())

	for _, host := range []string{"localhost", "127.0.0.1"} {
		c := newHTTPClient(Options{ConnectTimeout: DefaultConnectTimeout})
		resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: request went through", host)
		}
		if !errors.Is(err, ErrEgressDenied) {
			t.Fatalf("%s: err = %v, want ErrEgressDenied", host, err)
		}
		c.CloseIdleConnections()
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("server saw %d requests", n)
	}
	allowed := newHTTPClient(Options{ConnectTimeout: DefaultConnectTimeout, AllowPrivate: true})
	resp, err := allowed.Get("http://" + net.JoinHostPort("localhost", port) + "/")
	if err != nil {
		t.Fatalf("AllowPrivate: %v", err)
	}
	resp.Body.Close()
	allowed.CloseIdleConnections()
}

func TestToolboxEgressPolicy(t *testing.T) {
	t.Parallel()
	srv := startStreamable(t, "loop", toolstest.EchoTool, nil)
	m := newManager(t, Options{}) // private egress not allowed
	tools, warnings, err := m.Toolbox([]ServerConfig{srv.cfg}).List(t.Context())
	if err != nil || len(tools) != 0 {
		t.Fatalf("List = %q, %v", names(tools), err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "loopback") {
		t.Fatalf("warnings = %q", warnings)
	}
	if n := srv.Inits.Load(); n != 0 {
		t.Fatalf("server initialised %d times", n)
	}
}

func TestRedirectToOtherOriginRefused(t *testing.T) {
	t.Parallel()
	var leaked atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "" {
			leaked.Add(1)
		}
	}))
	t.Cleanup(other.Close)
	first := httptest.NewServer(http.RedirectHandler(other.URL+"/mcp", http.StatusTemporaryRedirect))
	t.Cleanup(first.Close)

	m := newManager(t, Options{AllowPrivate: true})
	cfg := ServerConfig{ID: "r", Slug: "r", Transport: TransportStreamableHTTP, URL: first.URL + "/mcp", Headers: map[string]string{"X-Api-Key": "secret"}}
	_, warnings, err := m.Toolbox([]ServerConfig{cfg}).List(t.Context())
	if err != nil || len(warnings) != 1 {
		t.Fatalf("warnings=%q err=%v", warnings, err)
	}
	if leaked.Load() != 0 {
		t.Fatal("the header followed a redirect to another origin")
	}
}
