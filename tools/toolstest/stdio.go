package toolstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// stdioBuild caches the test stdio server binary for the whole test binary.
var stdioBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// StdioServer builds tools/testdata/stdioserver (once per test binary) and returns the path of
// the binary. A TestMain that uses it calls RemoveBuilds after the tests.
func StdioServer(tb testing.TB) string {
	tb.Helper()
	stdioBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "toolstest-stdioserver-")
		if err != nil {
			stdioBuild.err = err
			return
		}
		stdioBuild.dir = dir
		stdioBuild.path = filepath.Join(dir, "stdioserver")
		out, err := exec.Command("go", "build", "-o", stdioBuild.path,
			"github.com/agentgate/agentgate/tools/testdata/stdioserver").CombinedOutput()
		if err != nil {
			stdioBuild.err = fmt.Errorf("go build stdioserver: %v\n%s", err, out)
		}
	})
	if stdioBuild.err != nil {
		tb.Fatal(stdioBuild.err)
	}
	return stdioBuild.path
}

// RemoveBuilds deletes what StdioServer built; TestMain calls it once the tests are done.
func RemoveBuilds() {
	if stdioBuild.dir != "" {
		_ = os.RemoveAll(stdioBuild.dir)
	}
}
