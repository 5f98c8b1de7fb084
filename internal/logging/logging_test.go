package logging

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactByName(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log, c, err := New(Options{Level: "debug", Format: "json"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	log.Info("x", "api_key", "sk-live-123", "Authorization", "Bearer abc", "workspace", "alice")
	out := buf.String()
	if strings.Contains(out, "sk-live-123") || strings.Contains(out, "Bearer abc") {
		t.Fatalf("secret logged: %s", out)
	}
	if !strings.Contains(out, "alice") {
		t.Fatalf("ordinary attribute lost: %s", out)
	}
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	if _, _, err := New(Options{Level: "loud"}, &bytes.Buffer{}); err == nil {
		t.Fatal("bad level accepted")
	}
	if _, _, err := New(Options{Level: "info", Format: "xml"}, &bytes.Buffer{}); err == nil {
		t.Fatal("bad format accepted")
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bulkhead.log")
	r, err := OpenRotating(path, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		fmt.Fprintf(r, "line %02d %s\n", i, strings.Repeat("x", 20))
	}
	r.Close()
	for _, p := range []string{path, path + ".1", path + ".2"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if st.Size() > 100 {
			t.Fatalf("%s is %d bytes, over the 100-byte cap", p, st.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Fatalf("more backups than asked: %v", err)
	}
	last, _ := os.ReadFile(path)
	if !strings.Contains(string(last), "line 19") {
		t.Fatalf("newest line not in current file: %q", last)
	}
}
