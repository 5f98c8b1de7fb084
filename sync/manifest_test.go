package sync_test

import (
	"encoding/json"
	"errors"
	"path"
	"strings"
	"testing"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
)

const validManifest = `{"version":1,"id":"0123456789abcdef","time":"2026-01-02T03:04:05Z","tree":[
{"path":".","type":"dir","mode":493,"mtime":1},
{"path":"d","type":"dir","mode":448,"mtime":2},
{"path":"d/f","type":"file","mode":420,"size":5,"mtime":3,"chunks":[{"id":"` + hex64 + `","n":5}]},
{"path":"l","type":"symlink","mode":511,"mtime":4,"target":"d/f"}],
"state":{"size":0,"chunks":null},"config":"e30=","stats":{"files":1,"dirs":2,"symlinks":1,"bytes":5,"bytes_read":5,"new_blobs":1,"bytes_new":5,"bytes_uploaded":100,"packs":1,"duration":5}}`

const hex64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func TestParseManifest(t *testing.T) {
	t.Parallel()
	s, err := bsync.ParseManifest([]byte(validManifest))
	if err != nil {
		t.Fatalf("valid manifest: %v", err)
	}
	if len(s.Tree) != 4 || s.Tree[2].Chunks[0].Size != 5 || string(s.Config) != "{}" {
		t.Fatalf("parsed %+v", s)
	}
	raw, err := bsync.ParseManifest([]byte(strings.Replace(validManifest, `"path":"l"`, `"path":"","raw_path":"/w=="`, 1)))
	if err != nil || raw.Tree[3].Path != "\xff" {
		t.Fatalf("raw path: %v", err)
	}
	bad := map[string]string{
		"truncated":           validManifest[:len(validManifest)/2],
		"empty":               "",
		"trailing":            validManifest + "{}",
		"version":             strings.Replace(validManifest, `"version":1`, `"version":2`, 1),
		"bad id":              strings.Replace(validManifest, `"id":"0123456789abcdef"`, `"id":"../x"`, 1),
		"unknown field":       strings.Replace(validManifest, `"version":1`, `"version":1,"evil":1`, 1),
		"dotdot":              strings.Replace(validManifest, `"path":"d/f"`, `"path":"d/../../f"`, 1),
		"absolute":            strings.Replace(validManifest, `"path":"d/f"`, `"path":"/etc/f"`, 1),
		"parent not listed":   strings.Replace(validManifest, `"path":"d/f"`, `"path":"e/f"`, 1),
		"parent is a symlink": strings.Replace(validManifest, `"target":"d/f"}]`, `"target":"/etc"},{"path":"l/passwd","type":"file","mode":420,"mtime":1}]`, 1),
		"duplicate":           strings.Replace(validManifest, `"path":"l"`, `"path":"d"`, 1),
		"size mismatch":       strings.Replace(validManifest, `"size":5`, `"size":6`, 1),
		"mode bits":           strings.Replace(validManifest, `"mode":420`, `"mode":8612`, 1),
		"no root":             strings.Replace(validManifest, `{"path":".","type":"dir","mode":493,"mtime":1},`, ``, 1),
		"device":              strings.Replace(validManifest, `"type":"symlink"`, `"type":"chardev"`, 1),
		"short chunk id":      strings.Replace(validManifest, hex64, "0011", 1),
		"empty target":        strings.Replace(validManifest, `"target":"d/f"`, `"target":""`, 1),
		"nul":                 strings.Replace(validManifest, `"path":"d/f"`, `"path":"d/f\u0000x"`, 1),
		"raw path is utf-8":   strings.Replace(validManifest, `"path":"l"`, `"path":"","raw_path":"bA=="`, 1),
		"raw path and path":   strings.Replace(validManifest, `"path":"l"`, `"path":"l","raw_path":"/w=="`, 1),
	}
	for name, m := range bad {
		_, err := bsync.ParseManifest([]byte(m))
		if !errors.Is(err, bsync.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzParseManifest: no input panics, and anything accepted satisfies the
// invariants Restore relies on and survives a re-encode.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(validManifest))
	f.Add([]byte(`{"version":1,"id":"0123456789abcdef","tree":[{"path":".","type":"dir"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := bsync.ParseManifest(data)
		if err != nil {
			if !errors.Is(err, bsync.ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		kinds := map[string]bsync.NodeType{}
		for i, n := range s.Tree {
			if i == 0 {
				if n.Path != "." || n.Type != bsync.TypeDir {
					t.Fatal("root is not first")
				}
				kinds["."] = bsync.TypeDir
				continue
			}
			if strings.HasPrefix(n.Path, "/") || strings.Contains("/"+n.Path+"/", "/../") || path.Clean(n.Path) != n.Path {
				t.Fatalf("unclean path %q accepted", n.Path)
			}
			if kinds[path.Dir(n.Path)] != bsync.TypeDir {
				t.Fatalf("%q accepted under a non-directory", n.Path)
			}
			if _, dup := kinds[n.Path]; dup {
				t.Fatalf("duplicate %q accepted", n.Path)
			}
			kinds[n.Path] = n.Type
		}
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bsync.ParseManifest(again); err != nil {
			t.Fatalf("re-encoded manifest rejected: %v", err)
		}
	})
}
