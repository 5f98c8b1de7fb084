package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at build time with -ldflags "-X github.com/bulkhead-dev/bulkhead/cli.version=...".
var (
	version = "dev"
	commit  = ""
)

// VersionCmd prints the version.
type VersionCmd struct {
	JSON bool `help:"Print as JSON."`
}

// Version returns the stamped version string.
func Version() string { return version }

// Run prints the version.
func (c *VersionCmd) Run(g *Globals) error {
	rev := commit
	if rev == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					rev = s.Value
				}
			}
		}
	}
	if c.JSON {
		return json.NewEncoder(g.Stdout).Encode(map[string]string{"version": version, "commit": rev, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH})
	}
	fmt.Fprintf(g.Stdout, "bulkhead %s", version)
	if rev != "" {
		fmt.Fprintf(g.Stdout, " (%s)", rev)
	}
	fmt.Fprintf(g.Stdout, " %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
