package server

import (
	"fmt"
	"testing"

	"github.com/bulkhead-dev/bulkhead/memory"
)

func TestMemoryRoutes(t *testing.T) {
	f := newFixture(t)
	var added AddMemoryResponse
	if code := f.do(t, f.alice, "POST", "/v1/workspaces/alice/memory", `{"text":"the deploy key rotates on mondays","tags":["ops"]}`, &added); code != 201 || added.ID == "" {
		t.Fatalf("add: %d %+v", code, added)
	}
	var res memory.Results
	if code := f.do(t, f.alice, "GET", "/v1/workspaces/alice/memory/search?q=deploy+key", "", &res); code != 200 || len(res.Hits) != 1 || res.Hits[0].Chunk.ID != added.ID {
		t.Fatalf("search: %d %+v", code, res)
	}
	// Bob's memory is his own: the same query finds nothing there.
	if code := f.do(t, f.bob, "GET", "/v1/workspaces/bob/memory/search?q=deploy+key", "", &res); code != 200 || len(res.Hits) != 0 {
		t.Fatalf("bob sees alice's memory: %d %+v", code, res)
	}
	var list []memory.Chunk
	if code := f.do(t, f.alice, "GET", "/v1/workspaces/alice/memory?limit=5", "", &list); code != 200 || len(list) != 1 {
		t.Fatalf("list: %d %+v", code, list)
	}
	for _, c := range []struct {
		method, path, body string
		code               int
	}{
		{"GET", "/v1/workspaces/alice/memory/search?q=", "", 400},
		{"GET", "/v1/workspaces/alice/memory/search?q=x&limit=abc", "", 400},
		{"POST", "/v1/workspaces/alice/memory", `{"text":""}`, 400},
		{"POST", "/v1/workspaces/alice/memory", `{"text":"x","extra":1}`, 400},
		{"DELETE", "/v1/workspaces/alice/memory/nope", "", 404},
		{"DELETE", "/v1/workspaces/bob/memory/" + added.ID, "", 404}, // alice's token, bob's path
	} {
		if code, b := f.raw(t, f.alice, c.method, c.path, c.body); code != c.code {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, b, c.code)
		}
	}
	if code := f.do(t, f.alice, "DELETE", fmt.Sprintf("/v1/workspaces/alice/memory/%s", added.ID), "", nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code := f.do(t, f.alice, "GET", "/v1/workspaces/alice/memory/search?q=deploy+key", "", &res); code != 200 || len(res.Hits) != 0 {
		t.Fatalf("deleted chunk still found: %+v", res)
	}
}
