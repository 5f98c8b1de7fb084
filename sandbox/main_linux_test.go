package sandbox_test

import (
	"os"
	"testing"

	"github.com/bulkhead-dev/bulkhead/sandbox"
	"github.com/bulkhead-dev/bulkhead/sandbox/internal/escape"
)

func TestMain(m *testing.M) {
	sandbox.RunInitIfRequested()
	if len(os.Args) > 1 && os.Args[1] == escape.ProbeArg {
		os.Exit(escape.Main(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == hostArg {
		os.Exit(hostChild())
	}
	if len(os.Args) > 1 && os.Args[1] == noUserNSArg {
		os.Exit(noUserNSChild())
	}
	code := m.Run()
	cleanupProbe()
	os.Exit(code)
}
