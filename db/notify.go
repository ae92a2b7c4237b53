package db

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"
)

// EventsChannel is the PostgreSQL notification channel on which NotifyEvents announces newly
// stored run events. Each payload is "<run_id> <seq>": the run's stored events reach seq.
const EventsChannel = "agentgate_run_events"

// EndpointsChannel is the PostgreSQL notification channel on which NotifyEndpointsChanged says
// that endpoints or workspaces were written, so other instances drop what they cached.
const EndpointsChannel = "agentgate_endpoints"

// NotifyEndpointsChanged announces on EndpointsChannel that endpoints or workspaces changed.
// Call it after the write is committed. On SQLite it does nothing.
func (s *Store) NotifyEndpointsChanged(ctx context.Context) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	if _, err := s.w.ExecContext(ctx, `SELECT pg_notify($1, '')`, EndpointsChannel); err != nil {
		return fmt.Errorf("db: notify endpoints: %w", err)
	}
	return nil
}

// EventMark says that the stored events of run RunID reach Seq.
type EventMark struct {
	RunID string
	Seq   int64
}

// CanListen reports whether ListenEvents is available (PostgreSQL). On SQLite followers poll.
func (s *Store) CanListen() bool { return s.dialect == DialectPostgres && s.dsn != "" }

// NotifyEvents announces marks on EventsChannel, in one statement, for instances that follow
// those runs (see ListenEvents). Call it after the events are committed. On SQLite it does
// nothing: there is no notification mechanism, followers poll.
func (s *Store) NotifyEvents(ctx context.Context, marks []EventMark) error {
	if s.dialect != DialectPostgres || len(marks) == 0 {
		return nil
	}
	payloads := make([]string, len(marks))
	for i, m := range marks {
		payloads[i] = m.RunID + " " + strconv.FormatInt(m.Seq, 10)
	}
	if _, err := s.w.ExecContext(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`,
		EventsChannel, pq.Array(payloads)); err != nil {
		return fmt.Errorf("db: notify events: %w", err)
	}
	return nil
}

// LastEventSeq returns the highest stored seq of a run's events, 0 when none is stored.
func (s *Store) LastEventSeq(ctx context.Context, runID string) (int64, error) {
	var seq int64
	err := s.r.QueryRowContext(ctx, s.r.Rebind(`SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = ?`), runID).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("db: last event seq: %w", err)
	}
	return seq, nil
}

// EventListener receives the marks of EventsChannel over one dedicated PostgreSQL connection,
// reconnecting by itself. It owns one goroutine, which Close stops and waits for.
type EventListener struct {
	l    *pq.Listener
	done chan struct{}
	once sync.Once
}

// ListenEvents starts listening on EventsChannel and EndpointsChannel. onMark is called for
// every event notification, onEndpoints (may be nil) for every endpoints one, and onReconnect
// after the connection was lost and restored (notifications may have been missed meanwhile, so
// callers should re-read what they follow). All are called from the listener's goroutine, one
// at a time, and must not block. It fails on SQLite (see CanListen) or when the first LISTEN
// fails.
func (s *Store) ListenEvents(ctx context.Context, onMark func(EventMark), onEndpoints, onReconnect func()) (*EventListener, error) {
	if !s.CanListen() {
		return nil, errors.New("db: listen events: only PostgreSQL has notifications")
	}
	l := pq.NewListener(s.dsn, 100*time.Millisecond, 5*time.Second, nil)
	listened := make(chan error, 1)
	go func() {
		err := l.Listen(EventsChannel)
		if err == nil {
			err = l.Listen(EndpointsChannel)
		}
		listened <- err
	}()
	select {
	case err := <-listened:
		if err != nil {
			_ = l.Close()
			drain(l.Notify)
			return nil, fmt.Errorf("db: listen events: %w", err)
		}
	case <-ctx.Done():
		_ = l.Close()
		<-listened
		drain(l.Notify)
		return nil, fmt.Errorf("db: listen events: %w", ctx.Err())
	}
	el := &EventListener{l: l, done: make(chan struct{})}
	go el.loop(onMark, onEndpoints, onReconnect)
	return el, nil
}

// drain waits until the listener's goroutine closed its channel.
func drain(c <-chan *pq.Notification) {
	for range c { //nolint:revive // discard until closed
	}
}

// loop hands notifications over until Close closes the channel.
func (el *EventListener) loop(onMark func(EventMark), onEndpoints, onReconnect func()) {
	defer close(el.done)
	for n := range el.l.Notify {
		if n == nil {
			if onReconnect != nil {
				onReconnect()
			}
			continue
		}
		if n.Channel == EndpointsChannel {
			if onEndpoints != nil {
				onEndpoints()
			}
			continue
		}
		run, seq, ok := strings.Cut(n.Extra, " ")
		v, err := strconv.ParseInt(seq, 10, 64)
		if !ok || err != nil || onMark == nil {
			continue
		}
		onMark(EventMark{RunID: run, Seq: v})
	}
}

// Close stops listening and waits for the listener's goroutine. It is idempotent.
func (el *EventListener) Close() {
	el.once.Do(func() { _ = el.l.Close() })
	<-el.done
}
