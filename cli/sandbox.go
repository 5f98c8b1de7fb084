package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/bulkhead-dev/bulkhead/sandbox"
)

// SandboxCmd groups sandbox commands.
type SandboxCmd struct {
	Doctor SandboxDoctorCmd `cmd:"" help:"Check each isolation layer on this host: what is available and what would fail."`
}

// SandboxDoctorCmd reports on every layer and starts a real sandbox.
type SandboxDoctorCmd struct{}

// Run prints one line per layer and fails if any layer would.
func (c *SandboxDoctorCmd) Run(g *Globals) error {
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	failed := 0
	for _, ch := range sandbox.Doctor(g.Context()) {
		status := "ok"
		if !ch.OK {
			status = "FAIL"
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", status, ch.Layer, ch.Detail)
	}
	tw.Flush()
	if failed > 0 {
		return errors.New("sandbox doctor: " + fmt.Sprint(failed) + " layer(s) would fail")
	}
	return nil
}
