package server

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/db/dbtest"
)

// TestRunner_JSONRunHere: a run left to its caller (a JSON answer) runs on the caller's
// goroutine, which gets the answer as soon as the run's terminal event is out; recording and
// billing go on after it, not before (here billing waits until the test lets it go).
func TestRunner_JSONRunHere(t *testing.T) {
	t.Parallel()
	store := dbtest.Open(t, "sqlite")
	llm := llmtest.New(t)
	llm.Handle(func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Text: "hello there"} })
	models := agent.NewModels(map[string]agent.Provider{"openai": {Name: "openai", BaseURL: llm.URL(), APIKey: "sk-test"}}, agent.ModelOptions{})
	model, err := models.For("openai", "", "")
	if err != nil {
		t.Fatal(err)
	}
	rn := newRunner(context.Background(), store, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Hour, 0)
	t.Cleanup(func() { _ = rn.close(context.Background()) })

	settling, release := make(chan struct{}), make(chan struct{})
	lr, sub := rn.start(startReq{
		rec:  &db.Run{ID: db.NewID("run_"), EndpointID: "aep_test", OwnerID: "usr_test", Status: "running", Input: "hi", CreatedAt: time.Now().UTC()},
		spec: agent.Spec{Model: model, ModelName: "m", SystemPrompt: "s", Input: "hi", MaxTokens: 100, MaxToolCalls: 1},
		settle: func(context.Context, agent.Outcome) int64 {
			close(settling)
			<-release
			return 0
		},
		timeout: time.Minute, here: true,
	})
	if sub != nil || lr.runHere == nil {
		t.Fatalf("a JSON run got a subscription (%v) or a goroutine of its own (runHere %v)", sub != nil, lr.runHere != nil)
	}
	answered := make(chan string, 1)
	go func() {
		ans, rerr := (&Server{}).awaitResult(lr)
		if rerr != nil {
			t.Errorf("run failed: %+v", rerr)
		}
		answered <- ans.Output
	}()
	select {
	case out := <-answered:
		if out != "hello there" {
			t.Fatalf("answer %q", out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the answer waited for billing")
	}
	<-settling
	select {
	case <-lr.done:
		t.Fatal("the run was finished before its billing")
	default:
	}
	close(release)
	<-lr.done
	rn.rlog.sync(context.Background())
	rec, err := store.Run(context.Background(), lr.id)
	if err != nil || rec.Status != "success" || rec.Output != "hello there" {
		t.Fatalf("run record %+v %v", rec, err)
	}
}
