package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/bulkhead-dev/bulkhead"

// layer of each top-level package; a package may import only packages of a
// strictly lower layer (its own subpackages excepted).
var layers = map[string]int{
	"internal":    0,
	"kv":          1,
	"credentials": 1,
	"sandbox":     1,
	"fusefs":      1,
	"vectors":     1,
	"textindex":   1,
	"sync":        1,
	"netguard":    1,
	"embed":       2, // uses netguard
	"memory":      2, // uses vectors, textindex
	"agent":       3, // uses netguard, and memory through a seam
	"workspace":   4,
	"board":       5,
	"server":      6,
	"client":      7,
	"cli":         8,
	"":            9, // main
	"test":        9,
}

func top(path string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
	t, _, _ := strings.Cut(rel, "/")
	return t
}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		from := top(f[0])
		lf, ok := layers[from]
		if !ok {
			t.Errorf("package %s has no layer: add it to archtest", f[0])
			continue
		}
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, module+"/") || imp == f[0] {
				continue
			}
			to := top(imp)
			if to == from || to == "internal" {
				continue
			}
			if lt, ok := layers[to]; !ok || lt >= lf {
				t.Errorf("%s imports %s: %s (layer %d) may only import lower layers, %s is layer %d", strings.TrimPrefix(f[0], module+"/"), strings.TrimPrefix(imp, module+"/"), from, lf, to, lt)
			}
		}
	}
}
