// Command bulkhead runs AI agents for many tenants on one Linux box. See
// README.md and docs/ARCHITECTURE.md.
package main

import (
	"os"

	"github.com/bulkhead-dev/bulkhead/cli"
	"github.com/bulkhead-dev/bulkhead/sandbox"
)

func main() {
	// Like runc's init: when re-executed as a sandbox's PID 1 (the hidden
	// argument sandbox.InitArg), become the init and never reach the CLI.
	sandbox.RunInitIfRequested()
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
