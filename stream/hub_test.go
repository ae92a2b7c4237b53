package stream_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentgate/agentgate/stream"
)

// TestMain fails the package if any test leaves a goroutine behind (pumps, linger timers).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds every wait in these tests so a bug fails the test instead of hanging it; it is
// never reached when the hub works.
const guard = 10 * time.Second

// newHub returns a hub that is closed when the test ends.
func newHub(tb testing.TB, opts stream.HubOptions) *stream.Hub {
	tb.Helper()
	h := stream.NewHub(opts)
	tb.Cleanup(h.Close)
	return h
}

// runEvents returns n events: n-1 tokens, then done.
func runEvents(runID string, n int) []stream.Event {
	events := make([]stream.Event, n)
	for i := range n - 1 {
		events[i] = stream.Event{Type: stream.TypeToken, Token: &stream.Token{Iteration: 1, Delta: fmt.Sprint(i + 1)}}
	}
	events[n-1] = stream.Event{Type: stream.TypeDone, Done: &stream.Answer{RunID: runID}}
	return events
}

// publish publishes events and checks the sequence numbers they get.
func publish(tb testing.TB, t *stream.Topic, events ...stream.Event) {
	tb.Helper()
	for _, e := range events {
		want := t.Seq() + 1
		got, err := t.Publish(e)
		if err != nil {
			tb.Errorf("Publish %s: %v", e.Type, err)
			return
		}
		if got.Seq != want {
			tb.Errorf("Publish gave seq %d, want %d", got.Seq, want)
		}
	}
}

// reader reads s until it ends, calling fn with each event, through one of the two read APIs
// of a Subscription. It is safe to call from any goroutine (one reader per subscription).
type reader func(tb testing.TB, s *stream.Subscription, fn func(stream.Event))

// readers are the two ways to read a subscription; the hub tests run with both.
var readers = []struct {
	name string
	each reader
}{
	{"chan", eachChan},
	{"pull", eachPull},
}

// forReaders runs test once per read API, as parallel subtests.
func forReaders(t *testing.T, test func(t *testing.T, each reader, collect func(testing.TB, *stream.Subscription) []stream.Event)) {
	t.Helper()
	for _, r := range readers {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			test(t, r.each, collectWith(r.each))
		})
	}
}

// eachChan reads s through C until the channel closes.
func eachChan(tb testing.TB, s *stream.Subscription, fn func(stream.Event)) {
	tb.Helper()
	timeout := time.NewTimer(guard)
	defer timeout.Stop()
	for {
		select {
		case e, ok := <-s.C():
			if !ok {
				return
			}
			fn(e)
		case <-timeout.C:
			tb.Errorf("subscription still open after %v", guard)
			return
		}
	}
}

// eachPull reads s through Ready and Next until it has ended.
func eachPull(tb testing.TB, s *stream.Subscription, fn func(stream.Event)) {
	tb.Helper()
	timeout := time.NewTimer(guard)
	defer timeout.Stop()
	for {
		select {
		case <-s.Ready():
			for {
				e, ok := s.Next()
				if !ok {
					break
				}
				fn(e)
			}
			if s.Ended() {
				return
			}
		case <-timeout.C:
			tb.Errorf("subscription still open after %v", guard)
			return
		}
	}
}

// collectWith returns a function that reads a subscription to its end with each and returns
// the events.
func collectWith(each reader) func(testing.TB, *stream.Subscription) []stream.Event {
	return func(tb testing.TB, s *stream.Subscription) []stream.Event {
		tb.Helper()
		var got []stream.Event
		each(tb, s, func(e stream.Event) { got = append(got, e) })
		return got
	}
}

// checkSeqs reports whether got holds exactly the events from..to in order, the last one
// terminal when to is the end of the run (last). It is safe to call from any goroutine.
func checkSeqs(tb testing.TB, got []stream.Event, from, to, last int64) bool {
	tb.Helper()
	if int64(len(got)) != max(to-from+1, 0) {
		tb.Errorf("got %d events, want seqs %d..%d", len(got), from, to)
		return false
	}
	for i, e := range got {
		if e.Seq != from+int64(i) {
			tb.Errorf("event %d has seq %d, want %d (gap or duplicate)", i, e.Seq, from+int64(i))
			return false
		}
		if e.Type.Terminal() != (e.Seq == last) {
			tb.Errorf("event seq %d is %s", e.Seq, e.Type)
			return false
		}
	}
	return true
}

func TestHubReplayFromEveryPosition(t *testing.T) {
	t.Parallel()
	forReaders(t, func(t *testing.T, each reader, collect func(testing.TB, *stream.Subscription) []stream.Event) {
		const n = 50
		h := newHub(t, stream.HubOptions{})
		topic := h.Open("run_finished")
		publish(t, topic, runEvents("run_finished", n)...)

		for after := int64(-1); after <= n+2; after++ {
			s, ok := h.Subscribe("run_finished", after)
			if !ok {
				t.Fatalf("Subscribe after %d: run unknown", after)
			}
			got := collect(t, s)
			checkSeqs(t, got, max(after, 0)+1, n, n)
			if s.Dropped() {
				t.Errorf("after %d: dropped", after)
			}
			s.Close()
		}
	})
}

func TestHubReplayThenLive(t *testing.T) {
	t.Parallel()
	forReaders(t, func(t *testing.T, each reader, collect func(testing.TB, *stream.Subscription) []stream.Event) {
		const n, half = 50, 25
		h := newHub(t, stream.HubOptions{})
		topic := h.Open("run_live")
		events := runEvents("run_live", n)
		publish(t, topic, events[:half]...)

		// One subscriber per position of the live run, each reading concurrently with the rest of
		// the run being published.
		var wg sync.WaitGroup
		for after := int64(0); after <= half; after++ {
			s, ok := h.Subscribe("run_live", after)
			if !ok {
				t.Fatal("live run unknown")
			}
			wg.Go(func() {
				defer s.Close()
				checkSeqs(t, collect(t, s), after+1, n, n)
			})
		}
		publish(t, topic, events[half:]...)
		wg.Wait()
	})
}

// TestHubConcurrentPublishSubscribe subscribes at random positions while the run is being
// published, with a buffer small enough that readers get dropped, and resumes dropped readers
// from the last seq they got, as a client does with Last-Event-ID. Every reader must end up with
// every event after its start exactly once.
func TestHubConcurrentPublishSubscribe(t *testing.T) {
	t.Parallel()
	forReaders(t, func(t *testing.T, each reader, collect func(testing.TB, *stream.Subscription) []stream.Event) {
		const (
			iterations = 40
			n          = 200
			readers    = 6
		)
		for it := range iterations {
			h := stream.NewHub(stream.HubOptions{SubscriberBuffer: 1 + it%16})
			runID := fmt.Sprintf("run_%d", it)
			topic := h.Open(runID)
			var wg sync.WaitGroup
			wg.Go(func() { publish(t, topic, runEvents(runID, n)...) })
			for range readers {
				wg.Go(func() {
					after := rand.Int64N(topic.Seq() + 1)
					var got []stream.Event
					for resumes := 0; ; resumes++ {
						last := after
						if len(got) > 0 {
							last = got[len(got)-1].Seq
						}
						s, ok := h.Subscribe(runID, last)
						if !ok {
							t.Errorf("Subscribe %s after %d: unknown", runID, last)
							return
						}
						part := collect(t, s)
						dropped := s.Dropped()
						s.Close()
						got = append(got, part...)
						if !dropped {
							break
						}
						if resumes > 10*n {
							t.Errorf("resumed %d times", resumes)
							return
						}
					}
					checkSeqs(t, got, after+1, n, n)
				})
			}
			wg.Wait()
			h.Close()
			if t.Failed() {
				t.Fatalf("iteration %d failed", it)
			}
		}
	})
}

// TestHubSlowSubscriberDropped: a subscriber that never reads is dropped after SubscriberBuffer
// live events, while Publish goes on and a reader that keeps up gets every event.
func TestHubSlowSubscriberDropped(t *testing.T) {
	t.Parallel()
	forReaders(t, func(t *testing.T, each reader, collect func(testing.TB, *stream.Subscription) []stream.Event) {
		const n, buffer = 100, 8
		h := newHub(t, stream.HubOptions{SubscriberBuffer: buffer})
		topic := h.Open("run_slow")
		stuck, _ := h.Subscribe("run_slow", 0)
		defer stuck.Close()
		fast, _ := h.Subscribe("run_slow", 0)
		defer fast.Close()

		// The fast reader acknowledges each event, and the publisher waits for the ack, so the fast
		// reader never lags by more than one event whatever the scheduling.
		acks := make(chan int64)
		fastDone := make(chan []stream.Event)
		go func() {
			var got []stream.Event
			each(t, fast, func(e stream.Event) {
				got = append(got, e)
				acks <- e.Seq
			})
			fastDone <- got
		}()
		for _, e := range runEvents("run_slow", n) {
			published, err := topic.Publish(e) // would block forever if the stuck reader held it up
			if err != nil {
				t.Fatal(err)
			}
			select {
			case seq := <-acks:
				if seq != published.Seq {
					t.Fatalf("fast reader acked %d, want %d", seq, published.Seq)
				}
			case <-time.After(guard):
				t.Fatalf("fast reader did not get seq %d", published.Seq)
			}
			// Publish decides synchronously: dropped exactly when the lag exceeds the buffer.
			if stuck.Dropped() != (published.Seq > buffer) {
				t.Fatalf("after seq %d (buffer %d) the stuck reader's Dropped() = %v", published.Seq, buffer, stuck.Dropped())
			}
		}
		checkSeqs(t, <-fastDone, 1, n, n)
		if fast.Dropped() {
			t.Error("fast reader dropped")
		}
		// The stuck reader has ended; whatever it still hands out has no gap.
		got := collect(t, stuck)
		if len(got) > 0 {
			checkSeqs(t, got, 1, got[len(got)-1].Seq, n)
		}
	})
}

func TestHubCloseReleasesEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // not parallel: counts goroutines
	h := stream.NewHub(stream.HubOptions{Linger: time.Hour})

	live := h.Open("run_live")
	publish(t, live, runEvents("run_live", 10)[:5]...)
	finished := h.Open("run_finished")
	publish(t, finished, runEvents("run_finished", 3)...) // lingers for an hour: a pending timer
	if h.Live() != 1 {
		t.Errorf("Live() = %d, want 1", h.Live())
	}
	// Channel readers whose pumps run (blocked on their first send, or parked caught up), and
	// pull readers that never read, or read all there was.
	var pumped, pulled []*stream.Subscription
	for _, id := range []string{"run_live", "run_live", "run_finished"} {
		for _, subs := range []*[]*stream.Subscription{&pumped, &pulled} {
			s, ok := h.Subscribe(id, 0)
			if !ok {
				t.Fatalf("Subscribe %s: unknown", id)
			}
			*subs = append(*subs, s)
		}
	}
	caughtUp, _ := h.Subscribe("run_live", 5)
	pumped = append(pumped, caughtUp)
	caughtUp, _ = h.Subscribe("run_live", 0)
	for range 5 {
		if _, ok := caughtUp.Next(); !ok {
			t.Fatal("Next: no replay")
		}
	}
	pulled = append(pulled, caughtUp)
	for _, s := range pumped {
		s.C() // starts the pump
	}

	h.Close()
	h.Close() // idempotent

	for i, s := range pumped {
		// Close waited for every pump, so each channel is already closed.
		if e, ok := <-s.C(); ok {
			t.Errorf("subscription %d delivers seq %d after Close", i, e.Seq)
		}
		if s.Dropped() {
			t.Errorf("subscription %d reports dropped after hub Close", i)
		}
		s.Close() // idempotent after the hub closed it
	}
	for i, s := range pulled {
		select {
		case <-s.Ready():
		default:
			t.Errorf("pull subscription %d not signalled by Close", i)
		}
		if e, ok := s.Next(); ok {
			t.Errorf("pull subscription %d delivers seq %d after Close", i, e.Seq)
		}
		if !s.Ended() || s.Dropped() {
			t.Errorf("pull subscription %d after Close: Ended %v Dropped %v", i, s.Ended(), s.Dropped())
		}
		s.Close()
		if e, ok := <-s.C(); ok { // C after the hub closed: a closed channel, no pump
			t.Errorf("subscription %d: C delivers seq %d after Close", i, e.Seq)
		}
	}
	if _, err := live.Publish(runEvents("run_live", 1)[0]); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if _, err := h.Open("run_new").Publish(runEvents("run_new", 1)[0]); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Publish on a topic opened after Close: %v, want ErrClosed", err)
	}
	if _, ok := h.Subscribe("run_finished", 0); ok {
		t.Error("Subscribe succeeds after Close")
	}
	if h.Live() != 0 {
		t.Errorf("Live() = %d after Close", h.Live())
	}
}

func TestHubLinger(t *testing.T) {
	t.Parallel()
	forReaders(t, func(t *testing.T, each reader, collect func(testing.TB, *stream.Subscription) []stream.Event) {
		tests := []struct {
			name   string
			linger time.Duration
		}{
			{"short linger", 20 * time.Millisecond},
			{"no linger", -1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				h := newHub(t, stream.HubOptions{Linger: tt.linger})
				topic := h.Open("run_linger")
				if h.Live() != 1 {
					t.Fatalf("Live() = %d, want 1", h.Live())
				}
				events := runEvents("run_linger", 5)
				publish(t, topic, events[:4]...)
				// A subscriber that holds on across the removal still gets the whole run.
				early, ok := h.Subscribe("run_linger", 0)
				if !ok {
					t.Fatal("live run unknown")
				}
				defer early.Close()
				publish(t, topic, events[4])
				if h.Live() != 0 {
					t.Fatalf("Live() = %d after the terminal event", h.Live())
				}
				deadline := time.Now().Add(guard)
				for {
					s, ok := h.Subscribe("run_linger", 0)
					if !ok {
						break
					}
					checkSeqs(t, collect(t, s), 1, 5, 5) // while it lingers, it replays in full
					s.Close()
					if time.Now().After(deadline) {
						t.Fatalf("finished run still subscribable after %v", guard)
					}
					runtime.Gosched()
				}
				checkSeqs(t, collect(t, early), 1, 5, 5)
			})
		}
	})
}

func TestTopic(t *testing.T) {
	t.Parallel()
	forReaders(t, func(t *testing.T, each reader, collect func(testing.TB, *stream.Subscription) []stream.Event) {
		h := newHub(t, stream.HubOptions{})
		topic := h.Open("run_topic")
		if h.Open("run_topic") != topic {
			t.Error("Open twice gave two topics")
		}
		if topic.RunID() != "run_topic" || topic.Seq() != 0 {
			t.Errorf("new topic: id %q seq %d", topic.RunID(), topic.Seq())
		}
		if _, ok := h.Subscribe("run_unknown", 0); ok {
			t.Error("Subscribe to an unknown run succeeded")
		}

		// The producer's Seq is ignored; bad events are refused without using a seq.
		e, err := topic.Publish(stream.Event{Seq: 99, Type: stream.TypeToken, Token: &stream.Token{Delta: "a"}})
		if err != nil || e.Seq != 1 {
			t.Fatalf("Publish: seq %d, %v", e.Seq, err)
		}
		for _, bad := range []stream.Event{{Type: "bogus"}, {Type: stream.TypeToken}, {Type: stream.TypeDone}} {
			if _, err := topic.Publish(bad); err == nil || errors.Is(err, stream.ErrClosed) {
				t.Errorf("Publish(%+v) = %v, want a validation error", bad, err)
			}
		}
		if e, _ := topic.Publish(stream.Event{Type: stream.TypeToken, Token: &stream.Token{Delta: "b"}}); e.Seq != 2 {
			t.Fatalf("seq %d after refused events, want 2", e.Seq)
		}

		// Close ends a run its producer abandoned with an INTERNAL_ERROR, exactly once.
		s, _ := h.Subscribe("run_topic", 0)
		defer s.Close()
		topic.Close()
		topic.Close()
		if _, err := topic.Publish(stream.Event{Type: stream.TypeToken, Token: &stream.Token{}}); !errors.Is(err, stream.ErrClosed) {
			t.Errorf("Publish after the terminal event: %v, want ErrClosed", err)
		}
		got := collect(t, s)
		if !checkSeqs(t, got, 1, 3, 3) {
			return
		}
		if end := got[2].Error; end == nil || end.Code != stream.CodeInternal || end.RunID != "run_topic" {
			t.Errorf("abandoned run ended with %+v", got[2])
		}

		// Close after a terminal event publishes nothing.
		done := h.Open("run_done")
		publish(t, done, runEvents("run_done", 2)...)
		done.Close()
		if done.Seq() != 2 {
			t.Errorf("Close after done published: seq %d", done.Seq())
		}
	})
}

// TestSubscriptionPull checks the contract of Ready and Next that readers' select loops rely
// on: a signal is pending whenever there is something to read or the subscription ended, and
// only then.
func TestSubscriptionPull(t *testing.T) {
	t.Parallel()
	ready := func(s *stream.Subscription) bool {
		select {
		case <-s.Ready():
			return true
		default:
			return false
		}
	}
	h := newHub(t, stream.HubOptions{})
	topic := h.Open("run_pull")
	events := runEvents("run_pull", 4)
	publish(t, topic, events[0])
	s, _ := h.Subscribe("run_pull", 0)
	defer s.Close()

	if !ready(s) {
		t.Fatal("new subscription: no signal pending for its replay")
	}
	if e, ok := s.Next(); !ok || e.Seq != 1 {
		t.Fatalf("Next = %d, %v; want the replay of seq 1", e.Seq, ok)
	}
	if _, ok := s.Next(); ok || s.Ended() || ready(s) {
		t.Fatalf("caught up: Next %v, Ended %v, signal pending %v; want false, false, false", ok, s.Ended(), ready(s))
	}
	publish(t, topic, events[1], events[2]) // two events, one signal
	if !ready(s) || ready(s) {
		t.Fatal("Publish did not leave exactly one signal pending")
	}
	for want := int64(2); want <= 3; want++ {
		if e, ok := s.Next(); !ok || e.Seq != want {
			t.Fatalf("Next = %d, %v; want seq %d", e.Seq, ok, want)
		}
	}
	publish(t, topic, events[3])
	if !ready(s) {
		t.Fatal("terminal Publish: no signal")
	}
	if e, ok := s.Next(); !ok || !e.Type.Terminal() {
		t.Fatalf("Next = %+v, %v; want the terminal event", e, ok)
	}
	if _, ok := s.Next(); ok || !s.Ended() {
		t.Fatalf("after the terminal event: Next %v, Ended %v", ok, s.Ended())
	}

	// Subscribing at the end of a finished run ends at once; past the end of a live run waits.
	end, _ := h.Subscribe("run_pull", 4)
	defer end.Close()
	if _, ok := end.Next(); !ready(end) || ok || !end.Ended() {
		t.Error("subscription at the end of a finished run did not end at once")
	}

	// Close from another goroutine wakes a reader parked on Ready and ends it.
	h.Open("run_parked")
	parked, _ := h.Subscribe("run_parked", 0)
	<-parked.Ready()
	woke := make(chan bool)
	go func() {
		select {
		case <-parked.Ready():
			_, ok := parked.Next()
			woke <- !ok && parked.Ended() && !parked.Dropped()
		case <-time.After(guard):
			woke <- false
		}
	}()
	parked.Close()
	if !<-woke {
		t.Error("Close did not wake and end a reader parked on Ready")
	}
	parked.Close() // idempotent
}

// TestHubIdleSubscriberMemory measures what an open, caught-up stream costs the hub (its
// topic with a few events and one subscription read with Ready and Next) and holds it to a
// budget far below the 30 KiB per stream of the whole gateway.
func TestHubIdleSubscriberMemory(t *testing.T) {
	// Not parallel: it reads process-wide memory statistics.
	const streams, budget = 2000, 3 << 10
	h := stream.NewHub(stream.HubOptions{})
	defer h.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	subs := make([]*stream.Subscription, streams)
	for i := range streams {
		id := fmt.Sprintf("run_%018x", i)
		topic := h.Open(id)
		for range 3 {
			publish(t, topic, stream.Event{Type: stream.TypeThinking, Thinking: &stream.Thinking{Status: stream.StatusLLMCall, Message: "Calling the model"}})
		}
		subs[i], _ = h.Subscribe(id, topic.Seq())
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// A subscription read with Ready and Next has no goroutine of its own (a few may come and
	// go in the runtime meanwhile, never one per stream).
	if grown := runtime.NumGoroutine() - goroutines; grown >= streams/10 {
		t.Errorf("%d subscriptions started %d goroutines", streams, grown)
	}
	used := (after.HeapInuse + after.StackInuse) - (before.HeapInuse + before.StackInuse)
	per := float64(used) / streams
	t.Logf("idle stream in the hub: %.0f bytes (heap %+d, stacks %+d over %d streams)", per,
		int64(after.HeapInuse)-int64(before.HeapInuse), int64(after.StackInuse)-int64(before.StackInuse), streams)
	// The race detector enlarges stacks and heap objects: measure, but hold to the budget only
	// in a normal build.
	if per > budget && !raceEnabled {
		t.Errorf("an idle stream costs %.0f bytes in the hub, budget %d", per, budget)
	}
	runtime.KeepAlive(subs)
}

func BenchmarkHubPublish(b *testing.B) {
	for _, readers := range []int{0, 1, 100} {
		b.Run(fmt.Sprintf("readers=%d", readers), func(b *testing.B) {
			h := stream.NewHub(stream.HubOptions{SubscriberBuffer: 1 << 30})
			defer h.Close()
			topic := h.Open("run_bench")
			var wg sync.WaitGroup
			for range readers {
				s, _ := h.Subscribe("run_bench", 0)
				wg.Go(func() {
					for range s.C() {
					}
				})
			}
			e := stream.Event{Type: stream.TypeToken, Token: &stream.Token{Delta: "x"}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := topic.Publish(e); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := topic.Publish(stream.Event{Type: stream.TypeDone, Done: &stream.Answer{}}); err != nil {
				b.Fatal(err)
			}
			wg.Wait()
		})
	}
}

// TestHubShortTopic: a short topic (a synchronous run) leaves the hub the moment its run has
// ended and its last reader has closed, with an hour's linger configured; a reader still
// holding on gets the whole run, and Last is the terminal event. A reader that was dropped for
// falling behind keeps it subscribable (it may come back for the rest).
func TestHubShortTopic(t *testing.T) {
	t.Parallel()
	h := newHub(t, stream.HubOptions{Linger: time.Hour, SubscriberBuffer: 4})
	known := func(id string) bool {
		s, ok := h.Subscribe(id, 0)
		if ok {
			s.Close()
		}
		return ok
	}

	t.Run("no reader", func(t *testing.T) {
		topic := h.OpenShort("run_a")
		publish(t, topic, runEvents("run_a", 3)...)
		if known("run_a") {
			t.Fatal("ended short topic with no reader is still in the hub")
		}
		if last, ok := topic.Last(); !ok || last.Type != stream.TypeDone || last.Seq != 3 {
			t.Fatalf("Last() = %+v %v, want the done event, seq 3", last, ok)
		}
	})

	t.Run("reader closes after the end", func(t *testing.T) {
		topic := h.OpenShort("run_b")
		s, _ := h.Subscribe("run_b", 0)
		publish(t, topic, runEvents("run_b", 3)...)
		checkSeqs(t, collectWith(eachPull)(t, s), 1, 3, 3)
		if !known("run_b") {
			t.Fatal("short topic left the hub while its reader was open")
		}
		s.Close()
		if known("run_b") {
			t.Fatal("short topic still in the hub after its last reader closed")
		}
	})

	t.Run("dropped reader", func(t *testing.T) {
		topic := h.OpenShort("run_c")
		s, _ := h.Subscribe("run_c", 0)
		publish(t, topic, runEvents("run_c", 10)...) // s reads nothing: dropped past 4
		if !s.Dropped() {
			t.Fatal("reader not dropped")
		}
		s.Close()
		again, ok := h.Subscribe("run_c", 0)
		if !ok {
			t.Fatal("short topic with a dropped reader did not linger")
		}
		checkSeqs(t, collectWith(eachPull)(t, again), 1, 10, 10)
		again.Close()
	})
}
