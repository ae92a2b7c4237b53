package stream

import "strings"

// Aggregator folds a run's events into the JSON answer (SPEC §5) for callers that did not ask
// for a stream. The answer is exactly the done payload; the aggregator also concatenates the
// token deltas so tests can check that they add up to the output.
//
// The first terminal event decides the result; events after it are ignored. Malformed events
// (unknown type, missing payload) are ignored too, except a terminal one, which turns the
// result into an INTERNAL_ERROR. An Aggregator is not safe for concurrent use.
type Aggregator struct {
	out    strings.Builder
	done   bool
	answer Answer
	err    *Error
}

// Add folds e into the result.
func (a *Aggregator) Add(e Event) {
	if a.done {
		return
	}
	switch e.Type {
	case TypeToken:
		if e.Token != nil {
			a.out.WriteString(e.Token.Delta)
		}
	case TypeDone:
		a.done = true
		if e.Done == nil {
			a.err = Errorf(CodeInternal, "run ended with an empty result")
			return
		}
		a.answer = *e.Done
	case TypeError:
		a.done = true
		if e.Error == nil {
			a.err = Errorf(CodeInternal, "run failed without an error")
			return
		}
		errCopy := *e.Error
		if errCopy.Code == "" {
			errCopy.Code = CodeInternal
		}
		a.err = &errCopy
	case TypeThinking, TypeToolCall, TypeToolResult, TypeUsage:
		// Progress only: the done payload already carries tool calls and usage.
	}
}

// Done reports whether a terminal event (done or error) has been added.
func (a *Aggregator) Done() bool { return a.done }

// Result returns the answer of a successful run, or the error that ended it. Before a terminal
// event it returns an INTERNAL_ERROR: a stream that ends without one is a bug.
func (a *Aggregator) Result() (Answer, *Error) {
	if !a.done {
		return Answer{}, Errorf(CodeInternal, "run ended without a result")
	}
	if a.err != nil {
		errCopy := *a.err
		return Answer{}, &errCopy
	}
	return a.answer, nil
}

// Output returns the concatenated token deltas added before the terminal event.
func (a *Aggregator) Output() string { return a.out.String() }
