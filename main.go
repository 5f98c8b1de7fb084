// Command bulkhead runs AI agents for many tenants on one Linux box. See
// README.md and docs/ARCHITECTURE.md.
package main

import (
	"os"

	"github.com/bulkhead-dev/bulkhead/cli"
)

// sandboxInitArg is the hidden first argument with which bulkhead re-executes
// itself as a sandbox's init. It is checked before the CLI parses anything.
const sandboxInitArg = "__bulkhead-sandbox-init"

func main() {
	if len(os.Args) > 1 && os.Args[1] == sandboxInitArg {
		// The sandbox package takes over here once it exists; until then the
		// argument is refused rather than parsed as a command.
		os.Stderr.WriteString("bulkhead: sandbox init is not available in this build\n")
		os.Exit(125)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
