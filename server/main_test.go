package server

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/agentgate/agentgate/tools/toolstest"
)

// TestMain checks that no test of the package leaves a goroutine behind: streams, followers,
// runs, the run log, the LISTEN connection and the servers must all have exited once every
// test's cleanup ran.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Connections of http.DefaultClient to servers the tests closed: their read loops end
		// when the peer's close is noticed, an instant after the test.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("internal/poll.runtime_pollWait"),
		// fasthttp's worker pool cleaner sleeps out its idle period after the server stopped.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		// fasthttp's process-wide Date header updater, started once, never stopped.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// The test stdio server binary is built once for all tests; remove it at the end.
		goleak.Cleanup(func(code int) { toolstest.RemoveBuilds(); os.Exit(code) }),
	)
}
