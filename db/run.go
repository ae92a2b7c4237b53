package db

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Run statuses.
const (
	// RunRunning is a run in progress (or one a crash left behind).
	RunRunning = "running"
	// RunSuccess is a run that answered.
	RunSuccess = "success"
	// RunError is a run that failed.
	RunError = "error"
	// RunTimeout is a run stopped by its timeout_ms.
	RunTimeout = "timeout"
	// RunCancelled is a run whose caller went away (or that shutdown ended).
	RunCancelled = "cancelled"
	// RunTest is a run started from the dashboard's test console.
	RunTest = "test"
)

// Run is one execution of an endpoint (the run log).
type Run struct {
	ID, EndpointID, OwnerID string
	// Status is running|success|error|timeout|cancelled|test.
	Status        string
	Input, Output string
	// ToolCalls is a JSON array; nil is stored and read back as [].
	ToolCalls               json.RawMessage
	ErrorCode, ErrorMessage string
	TokensInput             int64
	TokensOutput            int64
	CostMicroCents          int64
	LatencyMs, TTFTMs       int64
	Iterations              int
	ChargedMicroCents       int64
	Async                   bool
	CreatedAt               time.Time
	FinishedAt              *time.Time
}

// RunFilter selects runs for ListRuns. Empty fields do not filter.
type RunFilter struct {
	EndpointID, OwnerID, Status string
	// Since keeps runs created at or after it; zero = no bound.
	Since time.Time
	// Limit is clamped to 1..200; 0 means 50.
	Limit int
	// Cursor is a nextCursor returned by a previous ListRuns.
	Cursor string
}

const runCols = `id, endpoint_id, owner_id, status, input, output, tool_calls, error_code, error_message,
	tokens_input, tokens_output, cost_micro_cents, latency_ms, ttft_ms, iterations, charged_micro_cents,
	async, created_at, finished_at`

// runColN is the number of columns in runCols.
const runColN = 19

// upsertRunHead and upsertRunTail frame a multi-row upsert of runs (valuesList goes between).
// A conflict keeps endpoint_id, owner_id and created_at of the first write.
const (
	upsertRunHead = `INSERT INTO runs (` + runCols + `) VALUES `
	upsertRunTail = ` ON CONFLICT (id) DO UPDATE SET status = excluded.status, input = excluded.input,
	output = excluded.output, tool_calls = excluded.tool_calls, error_code = excluded.error_code,
	error_message = excluded.error_message, tokens_input = excluded.tokens_input,
	tokens_output = excluded.tokens_output, cost_micro_cents = excluded.cost_micro_cents,
	latency_ms = excluded.latency_ms, ttft_ms = excluded.ttft_ms, iterations = excluded.iterations,
	charged_micro_cents = excluded.charged_micro_cents, async = excluded.async, finished_at = excluded.finished_at`
)

func scanRun(sc interface{ Scan(...any) error }) (*Run, error) {
	var r Run
	var tools string
	var created int64
	var finished sql.NullInt64
	if err := sc.Scan(&r.ID, &r.EndpointID, &r.OwnerID, &r.Status, &r.Input, &r.Output, &tools, &r.ErrorCode,
		&r.ErrorMessage, &r.TokensInput, &r.TokensOutput, &r.CostMicroCents, &r.LatencyMs, &r.TTFTMs,
		&r.Iterations, &r.ChargedMicroCents, &r.Async, &created, &finished); err != nil {
		return nil, err
	}
	if tools == "" {
		tools = "[]"
	}
	r.ToolCalls = json.RawMessage(tools)
	r.CreatedAt = fromMicros(created)
	if finished.Valid {
		t := fromMicros(finished.Int64)
		r.FinishedAt = &t
	}
	return &r, nil
}

// SaveRuns upserts runs by ID in one transaction, with multi-row statements
// of up to runChunk runs each. It fills an empty ID and a zero CreatedAt; a
// later save of the same run updates everything but EndpointID, OwnerID and
// CreatedAt. Nil entries are skipped. When runs holds the same ID more than
// once, the last version is stored, as if saved one after the other (so with
// the first one's EndpointID, OwnerID and CreatedAt).
//
// On PostgreSQL each chunk of runs is one multi-row statement (one round trip); on SQLite,
// which is in process, one prepared single-row statement is executed per run (no SQL to parse
// per batch: the parsing of multi-row statements of ever-changing sizes showed in profiles).
func (s *Store) SaveRuns(ctx context.Context, runs []*Run) error {
	uniq := make([]*Run, 0, len(runs))
	var seen map[string]int
	if len(runs) > 1 {
		seen = make(map[string]int, len(runs))
	}
	for _, r := range runs {
		if r == nil {
			continue
		}
		if r.ID == "" {
			r.ID = NewID("run_")
		}
		r.CreatedAt = norm(r.CreatedAt)
		if r.FinishedAt != nil {
			t := r.FinishedAt.UTC().Truncate(time.Microsecond)
			r.FinishedAt = &t
		}
		if i, ok := seen[r.ID]; ok {
			// One statement may not touch a row twice (PostgreSQL refuses it).
			last := *r
			last.EndpointID, last.OwnerID, last.CreatedAt = uniq[i].EndpointID, uniq[i].OwnerID, uniq[i].CreatedAt
			uniq[i] = &last
			continue
		}
		if seen != nil {
			seen[r.ID] = len(uniq)
		}
		uniq = append(uniq, r)
	}
	if len(uniq) == 0 {
		return nil
	}
	dollar := s.dialect == DialectPostgres
	if !dollar {
		return s.saveRunsOneByOne(ctx, uniq)
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		args := make([]any, 0, min(len(uniq), runChunk)*runColN)
		for len(uniq) > 0 {
			chunk := uniq[:min(len(uniq), runChunk)]
			uniq = uniq[len(chunk):]
			args = args[:0]
			for _, r := range chunk {
				args = appendRunArgs(args, r)
			}
			q := upsertRunHead + valuesList(dollar, len(chunk), runColN) + upsertRunTail
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("db: save %d runs (first %s): %w", len(chunk), chunk[0].ID, err)
			}
		}
		return nil
	})
}

// Run returns the run id, or ErrNotFound. It does not check ownership.
func (s *Store) Run(ctx context.Context, id string) (*Run, error) {
	r, err := scanRun(s.r.QueryRowContext(ctx, s.r.Rebind(`SELECT `+runCols+` FROM runs WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("db: get run: %w", err)
	}
	return r, nil
}

func encodeCursor(created int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(created, 10) + ":" + id))
}

func decodeCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrInvalidCursor
	}
	ts, id, ok := strings.Cut(string(b), ":")
	if !ok || id == "" {
		return 0, "", ErrInvalidCursor
	}
	v, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, "", ErrInvalidCursor
	}
	return v, id, nil
}

// ListRuns returns runs matching f, newest first by (CreatedAt, ID), and the
// cursor of the next page ("" when this is the last). A malformed cursor →
// ErrInvalidCursor.
func (s *Store) ListRuns(ctx context.Context, f RunFilter) ([]*Run, string, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = 50
	case limit > 200:
		limit = 200
	}
	var where []string
	var args []any
	if f.EndpointID != "" {
		where, args = append(where, "endpoint_id = ?"), append(args, f.EndpointID)
	}
	if f.OwnerID != "" {
		where, args = append(where, "owner_id = ?"), append(args, f.OwnerID)
	}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, f.Status)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, micros(f.Since))
	}
	if f.Cursor != "" {
		ts, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("db: list runs: %w", err)
		}
		// A row-value comparison: both databases can walk the index with it.
		where = append(where, "(created_at, id) < (?, ?)")
		args = append(args, ts, id)
	}
	q := `SELECT ` + runCols + ` FROM runs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.r.QueryContext(ctx, s.r.Rebind(q), args...)
	if err != nil {
		return nil, "", fmt.Errorf("db: list runs: %w", err)
	}
	defer rows.Close()
	out := make([]*Run, 0, min(limit+1, 64))
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, "", fmt.Errorf("db: list runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("db: list runs: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(micros(last.CreatedAt), last.ID)
	}
	return out, next, nil
}

// FinishStaleRuns marks every run still "running" that was created before
// `before` with status and a FinishedAt of now, and returns how many. The
// server calls it at startup and shutdown for runs no process will finish.
func (s *Store) FinishStaleRuns(ctx context.Context, status string, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, s.w.Rebind(`UPDATE runs SET status = ?, finished_at = ?
		WHERE status = 'running' AND created_at < ?`), status, micros(now()), micros(before))
	if err != nil {
		return 0, fmt.Errorf("db: finish stale runs: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("db: finish stale runs: %w", err)
	}
	return n, nil
}

// saveRunsOneByOne upserts runs (already deduplicated) in one transaction with the prepared
// single-row statement (SQLite).
func (s *Store) saveRunsOneByOne(ctx context.Context, runs []*Run) error {
	st, err := s.saveRun.get(ctx, s.w, upsertRunHead+valuesList(false, 1, runColN)+upsertRunTail)
	if err != nil {
		return fmt.Errorf("db: prepare run upsert: %w", err)
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		ts := tx.StmtContext(ctx, st)
		args := make([]any, 0, runColN)
		for _, r := range runs {
			if _, err := ts.ExecContext(ctx, appendRunArgs(args[:0], r)...); err != nil {
				return fmt.Errorf("db: save run %s: %w", r.ID, err)
			}
			// SQLite runs in this process: a batch of a few hundred rows would hold one of
			// the gateway's few Ps for milliseconds, and a request that arrives meanwhile
			// waits for it (Go does not preempt for 10 ms). Let it run between rows.
			runtime.Gosched()
		}
		return nil
	})
}

// appendRunArgs appends r's column values in upsert order.
func appendRunArgs(args []any, r *Run) []any {
	tools := string(r.ToolCalls)
	if len(r.ToolCalls) == 0 || tools == "null" {
		tools = "[]"
	}
	var finished sql.NullInt64
	if r.FinishedAt != nil {
		finished = sql.NullInt64{Int64: micros(*r.FinishedAt), Valid: true}
	}
	return append(args, r.ID, r.EndpointID, r.OwnerID, r.Status, r.Input, r.Output, tools,
		r.ErrorCode, r.ErrorMessage, r.TokensInput, r.TokensOutput, r.CostMicroCents, r.LatencyMs,
		r.TTFTMs, r.Iterations, r.ChargedMicroCents, r.Async, micros(r.CreatedAt), finished)
}
