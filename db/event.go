package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// RunEvent is one event of a run's replay log. Seq is 1, 2, 3 … per run.
type RunEvent struct {
	RunID     string
	Seq       int64
	Type      string
	Data      []byte // one line of JSON
	CreatedAt time.Time
}

// AppendEvents stores events in one transaction, with multi-row statements
// of up to eventChunk events each. (RunID, Seq) is the key: appending an
// event that is already stored (or earlier in events) is ignored, so a
// retried batch is harmless. A zero CreatedAt becomes now.
func (s *Store) AppendEvents(ctx context.Context, events []RunEvent) error {
	if len(events) == 0 {
		return nil
	}
	dollar := s.dialect == DialectPostgres
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		args := make([]any, 0, min(len(events), eventChunk)*5)
		for rest := events; len(rest) > 0; {
			chunk := rest[:min(len(rest), eventChunk)]
			rest = rest[len(chunk):]
			args = args[:0]
			for i := range chunk {
				ev := &chunk[i]
				// string(Data): a TEXT column, and lib/pq would send []byte as bytea.
				args = append(args, ev.RunID, ev.Seq, ev.Type, string(ev.Data), micros(norm(ev.CreatedAt)))
			}
			q := `INSERT INTO run_events (run_id, seq, type, data, created_at) VALUES ` +
				valuesList(dollar, len(chunk), 5) + ` ON CONFLICT (run_id, seq) DO NOTHING`
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("db: append %d events (first %s/%d): %w", len(chunk), chunk[0].RunID, chunk[0].Seq, err)
			}
		}
		return nil
	})
}

// Events returns the run's events with Seq > afterSeq, in Seq order.
func (s *Store) Events(ctx context.Context, runID string, afterSeq int64) ([]RunEvent, error) {
	rows, err := s.r.QueryContext(ctx, s.r.Rebind(`SELECT run_id, seq, type, data, created_at FROM run_events
		WHERE run_id = ? AND seq > ? ORDER BY seq`), runID, afterSeq)
	if err != nil {
		return nil, fmt.Errorf("db: events: %w", err)
	}
	defer rows.Close()
	out := []RunEvent{}
	for rows.Next() {
		var ev RunEvent
		var data string
		var created int64
		if err := rows.Scan(&ev.RunID, &ev.Seq, &ev.Type, &data, &created); err != nil {
			return nil, fmt.Errorf("db: events: %w", err)
		}
		ev.Data = []byte(data)
		ev.CreatedAt = fromMicros(created)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("db: events: %w", err)
	}
	return out, nil
}

// DeleteEventsBefore deletes events created before t (retention) and
// returns how many.
func (s *Store) DeleteEventsBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, s.w.Rebind(`DELETE FROM run_events WHERE created_at < ?`), micros(t))
	if err != nil {
		return 0, fmt.Errorf("db: delete events: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("db: delete events: %w", err)
	}
	return n, nil
}
