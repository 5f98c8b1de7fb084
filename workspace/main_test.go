package workspace

import (
	"os"
	"testing"

	"github.com/bulkhead-dev/bulkhead/sandbox"
)

// The test binary doubles as the sandbox init, as the bulkhead binary does.
func TestMain(m *testing.M) {
	sandbox.RunInitIfRequested()
	os.Exit(m.Run())
}
