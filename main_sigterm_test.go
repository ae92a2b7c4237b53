package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"github.com/agentgate/agentgate/db"
)

// childEnv names the variable that makes the test binary run the gateway (main) instead of
// the tests: TestServe_SIGTERM starts it as a process of its own and sends it SIGTERM.
const childEnv = "AGENTGATE_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "serve" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestServe_SIGTERM: the gateway as a process, with 100 open streams of runs that wait on
// their model (the demo model, one word a minute): half synchronous streams, half followers
// of async runs. After SIGTERM every stream ends with its terminal event (error UNAVAILABLE
// "server shutting down"), the process exits 0 once the drain period is over, and every run
// record has a final status.
func TestServe_SIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the gateway as a process")
	}
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr, data := freeAddr(t), t.TempDir()
	cmd := exec.Command(exe, "serve", "--addr", addr, "--data", data, "--drain-timeout", "200ms",
		"--demo-pace", "1m", "--runs-per-minute", "1000", "--log-format", "text", "--log-level", "warn")
	cmd.Env = []string{childEnv + "=serve", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	var exitErr error
	wait := func() error {
		once.Do(func() {
			select {
			case exitErr = <-exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				exitErr = <-exited
				t.Errorf("the gateway did not exit within 30 s of SIGTERM")
			}
		})
		return exitErr
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = wait()
	})
	base := "http://" + addr
	waitHealthy(t, base, exited, &stderr)

	var reg struct {
		Token string `json:"token"`
	}
	post(t, base+"/api/auth/register", "", `{"email":"sig@example.com","password":"a-long-password"}`, 201, &reg)
	var created struct {
		APIKey   string `json:"api_key"`
		Endpoint struct {
			Slug string `json:"slug"`
		} `json:"endpoint"`
	}
	post(t, base+"/api/agent-endpoints", reg.Token, `{"name":"slow","system_prompt":"You wait.","llm_provider":"demo"}`, 201, &created)
	run := base + "/api/run/" + created.Endpoint.Slug

	const n = 100
	type follower struct {
		runID  string
		first  chan struct{}     // closed at the first event
		events chan []*sse.Event // the whole stream, once it has ended
	}
	fs := make([]*follower, n)
	for i := range fs {
		f := &follower{first: make(chan struct{}), events: make(chan []*sse.Event, 1)}
		var res *http.Response
		if i%2 == 0 {
			res = send(t, "POST", run, created.APIKey, `{"input":"hello"}`, "text/event-stream")
			f.runID = res.Header.Get("X-Run-Id")
		} else {
			var acc struct {
				RunID       string `json:"run_id"`
				EventsURL   string `json:"events_url"`
				StreamToken string `json:"stream_token"`
			}
			post(t, run+"?async=true", created.APIKey, `{"input":"hello"}`, 202, &acc)
			f.runID = acc.RunID
			res = send(t, "GET", base+acc.EventsURL+"?token="+acc.StreamToken, "", "", "text/event-stream")
		}
		if res.StatusCode != 200 || f.runID == "" {
			t.Fatalf("stream %d: status %d, run %q", i, res.StatusCode, f.runID)
		}
		go func() {
			defer res.Body.Close()
			var got []*sse.Event
			for ev, err := range sse.Read(res.Body, nil) {
				if err != nil {
					break
				}
				got = append(got, &ev)
				if len(got) == 1 {
					close(f.first)
				}
			}
			if len(got) == 0 {
				close(f.first)
			}
			f.events <- got
		}()
		fs[i] = f
	}
	for i, f := range fs {
		select {
		case <-f.first:
		case <-time.After(30 * time.Second):
			t.Fatalf("stream %d: no event", i)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i, f := range fs {
		var got []*sse.Event
		select {
		case got = <-f.events:
		case <-time.After(30 * time.Second):
			t.Fatalf("stream %d still open 30 s after SIGTERM", i)
		}
		last := got[len(got)-1]
		var payload struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal([]byte(last.Data), &payload)
		if last.Type != "error" || payload.Code != "UNAVAILABLE" || payload.Message != "server shutting down" {
			t.Fatalf("stream %d (%d events) ended with %s %s", i, len(got), last.Type, last.Data)
		}
		for _, ev := range got[:len(got)-1] {
			if ev.Type == "error" || ev.Type == "done" {
				t.Fatalf("stream %d: terminal event %s before the last", i, ev.Type)
			}
		}
	}
	if err := wait(); err != nil {
		t.Fatalf("the gateway exited with %v\n%s", err, stderr.String())
	}

	cfg := DefaultConfig()
	cfg.DataDir = data
	store, err := openStore(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i, f := range fs {
		rec, err := store.Run(context.Background(), f.runID)
		if err != nil || rec.Status != db.RunCancelled || rec.FinishedAt == nil || rec.ErrorCode != "UNAVAILABLE" {
			t.Fatalf("run %d record %+v %v", i, rec, err)
		}
	}
}

// waitHealthy polls base/healthz until it answers 200, failing if the process exits first.
func waitHealthy(t *testing.T, base string, exited <-chan error, stderr *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if res, err := http.Get(base + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not answer /healthz")
		}
		select {
		case err := <-exited:
			t.Fatalf("the gateway exited early: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond): // polling an external effect with a deadline
		}
	}
}

// send makes a request with an optional bearer token, body and Accept header; the caller
// closes the body.
func send(t *testing.T, method, url, token, body, accept string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// post sends a JSON body and decodes the answer, which must have status want.
func post(t *testing.T, url, token, body string, want int, v any) {
	t.Helper()
	res := send(t, "POST", url, token, body, "")
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("POST %s: %d %s, want %d", url, res.StatusCode, raw, want)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("POST %s: %v: %s", url, err, raw)
	}
}
