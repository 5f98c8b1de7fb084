package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
)

func (f *fixture) writeFile(t *testing.T, ws, name, content string) {
	t.Helper()
	p := filepath.Join(f.svc.FilesDir(ws), name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) setKey(t *testing.T, ws, key, value string) {
	t.Helper()
	db, release, err := f.svc.DB(context.Background(), ws)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(key), []byte(value)) }); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) getKey(t *testing.T, ws, key string) string {
	t.Helper()
	db, release, err := f.svc.DB(context.Background(), ws)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var v []byte
	err = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(key))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if err == badger.ErrKeyNotFound {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

// The whole cycle through the API with alice's own token: backup, list,
// diff, verify, restore in place; prune and fork need admin; a fork is a
// working workspace whose credentials open under its own key.
func TestSnapshotRoutes(t *testing.T) {
	f := newFixture(t)
	base := "/v1/workspaces/alice/snapshots"
	var list []SnapshotSummary
	if code := f.do(t, f.alice, "GET", base, "", &list); code != 200 || len(list) != 0 {
		t.Fatalf("list before any backup: %d %v", code, list)
	}
	f.writeFile(t, "alice", "notes/a.txt", "version one")
	f.setKey(t, "alice", "usage/2026-01-01/p/m", `{"input_tokens":1}`)
	var s1, s2 SnapshotSummary
	if code, b := f.raw(t, f.alice, "POST", base, `{"tags":["first"]}`); code != 201 {
		t.Fatalf("backup: %d %s", code, b)
	}
	f.do(t, f.alice, "GET", base, "", &list)
	if len(list) != 1 || list[0].Tags[0] != "first" || list[0].Stats.Files != 1 {
		t.Fatalf("list: %+v", list)
	}
	s1 = list[0]
	f.writeFile(t, "alice", "notes/a.txt", "version two, longer")
	// Usage grows and an operator's key appears after the snapshot; a
	// restore by the tenant must not roll either back.
	f.setKey(t, "alice", "usage/2026-01-01/p/m", `{"input_tokens":999}`)
	f.setKey(t, "alice", "skill/late", "x")
	if code := f.do(t, f.alice, "POST", base, "", &s2); code != 201 || s2.ID == s1.ID {
		t.Fatalf("second backup (no body): %d %+v", code, s2)
	}

	var d bsync.DiffResult
	if code := f.do(t, f.alice, "GET", base+"/diff?from="+s1.ID+"&to="+s2.ID, "", &d); code != 200 {
		t.Fatalf("diff: %d", code)
	}
	if len(d.Changes) != 1 || d.Changes[0].Path != "notes/a.txt" || d.Changes[0].Kind != bsync.Modified || !d.StateChanged {
		t.Fatalf("diff: %+v", d)
	}
	if code, _ := f.raw(t, f.alice, "GET", base+"/diff?from="+s1.ID, ""); code != 400 {
		t.Fatalf("diff without to: %d", code)
	}
	if code, _ := f.raw(t, f.alice, "GET", base+"/diff?from="+s1.ID+"&to=ffffffffffffffff", ""); code != 404 {
		t.Fatalf("diff with unknown snapshot: %d", code)
	}

	var rep bsync.VerifyReport
	if code := f.do(t, f.alice, "POST", base+"/verify", `{"read_data":1}`, &rep); code != 200 || !rep.OK() || rep.Snapshots != 2 || rep.PacksRead == 0 {
		t.Fatalf("verify: %d %+v", code, rep)
	}

	// In place needs confirm.
	restore := base + "/" + s1.ID + "/restore"
	if code, b := f.raw(t, f.alice, "POST", restore, `{}`); code != 400 || !bytes.Contains(b, []byte("confirm")) {
		t.Fatalf("unconfirmed restore: %d %s", code, b)
	}
	if got, _ := os.ReadFile(filepath.Join(f.svc.FilesDir("alice"), "notes/a.txt")); string(got) != "version two, longer" {
		t.Fatal("unconfirmed restore changed files")
	}
	var rr RestoreResponse
	if code := f.do(t, f.alice, "POST", restore, `{"confirm":true}`, &rr); code != 200 || rr.Workspace != "alice" {
		t.Fatalf("restore: %d %+v", code, rr)
	}
	if got, _ := os.ReadFile(filepath.Join(f.svc.FilesDir("alice"), "notes/a.txt")); string(got) != "version one" {
		t.Fatalf("restored file: %q", got)
	}
	if got := f.getKey(t, "alice", "usage/2026-01-01/p/m"); got != `{"input_tokens":999}` {
		t.Fatalf("restore rolled usage back to %q", got)
	}
	if got := f.getKey(t, "alice", "skill/late"); got != "x" {
		t.Fatalf("restore dropped the operator's skill key: %q", got)
	}
	if v, err := f.svc.Credential(context.Background(), "alice", "github"); err != nil || string(v.Reveal()) != "secret-of-alice" {
		t.Fatalf("credential after in-place restore: %v", err)
	}

	// Fork: admin only.
	if code, _ := f.raw(t, f.alice, "POST", restore, `{"to":"alice2"}`); code != 403 {
		t.Fatalf("alice forked: %d", code)
	}
	if ok, _ := f.svc.Exists(context.Background(), "alice2"); ok {
		t.Fatal("refused fork left a workspace")
	}
	if code, b := f.raw(t, f.admin, "POST", base+"/latest/restore", `{"to":"alice2"}`); code != 200 {
		t.Fatalf("fork: %d %s", code, b)
	}
	if got, _ := os.ReadFile(filepath.Join(f.svc.FilesDir("alice2"), "notes/a.txt")); string(got) != "version two, longer" {
		t.Fatalf("forked file: %q", got)
	}
	v, err := f.svc.Credential(context.Background(), "alice2", "github")
	if err != nil || string(v.Reveal()) != "secret-of-alice" {
		t.Fatalf("credential in the fork: %v", err)
	}
	if got := f.getKey(t, "alice2", "meta/workspace"); got != "alice2" {
		t.Fatalf("fork's meta/workspace = %q", got)
	}
	// The fork's credentials are its own: they stay readable after the
	// source is deleted (and its key destroyed).
	if code := f.do(t, f.admin, "DELETE", "/v1/workspaces/alice", "", nil); code != 204 {
		t.Fatal("delete alice")
	}
	if v, err := f.svc.Credential(context.Background(), "alice2", "github"); err != nil || string(v.Reveal()) != "secret-of-alice" {
		t.Fatalf("fork's credential after deleting the source: %v", err)
	}
	// Forking onto an existing workspace is refused and leaves it alone.
	if code, _ := f.raw(t, f.admin, "POST", "/v1/workspaces/alice2/snapshots", ""); code != 201 {
		t.Fatal("backup alice2")
	}
	if code, _ := f.raw(t, f.admin, "POST", "/v1/workspaces/alice2/snapshots/latest/restore", `{"to":"bob"}`); code != 409 {
		t.Fatalf("fork onto bob: %d", code)
	}
	if v, err := f.svc.Credential(context.Background(), "bob", "github"); err != nil || string(v.Reveal()) != "secret-of-bob" {
		t.Fatalf("bob after a refused fork: %v", err)
	}
	// Streamed: progress events, then the snapshot as the result.
	base = "/v1/workspaces/alice2/snapshots"
	evs := postSSE(t, f, f.admin, base, `{"tags":["streamed"]}`)
	if len(evs) < 2 || evs[0].kind != "progress" || evs[len(evs)-1].kind != "result" {
		t.Fatalf("streamed backup events: %+v", evs)
	}
	var last ProgressEvent
	json.Unmarshal([]byte(evs[len(evs)-2].data), &last)
	var streamed SnapshotSummary
	json.Unmarshal([]byte(evs[len(evs)-1].data), &streamed)
	if !last.Done || last.Op != "backup" || last.Files != 1 || streamed.ID == "" || streamed.Tags[0] != "streamed" {
		t.Fatalf("streamed backup: last progress %+v, result %+v", last, streamed)
	}
	// Refused before the work starts: a plain JSON answer, no stream.
	if evs := postSSE(t, f, f.admin, base+"/ffffffffffffffff/restore", `{"confirm":true}`); len(evs) != 0 {
		t.Fatalf("restore of an unknown snapshot streamed: %+v", evs)
	}
	// Failing once started: an error event with the status it would have had.
	_, release, err := f.svc.Memory(context.Background(), "alice2")
	if err != nil {
		t.Fatal(err)
	}
	evs = postSSE(t, f, f.admin, base+"/latest/restore", `{"confirm":true}`)
	release()
	if len(evs) == 0 || evs[len(evs)-1].kind != "error" || !strings.Contains(evs[len(evs)-1].data, `"status":409`) {
		t.Fatalf("streamed restore while the memory is open: %+v", evs)
	}
}

func TestSnapshotPruneAdminOnly(t *testing.T) {
	f := newFixture(t)
	base := "/v1/workspaces/alice/snapshots"
	for i := range 3 {
		f.writeFile(t, "alice", "f", string(rune('a'+i)))
		if code, b := f.raw(t, f.alice, "POST", base, ""); code != 201 {
			t.Fatalf("backup %d: %d %s", i, code, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _ := f.raw(t, f.alice, "POST", base+"/prune", `{"keep_last":1}`); code != 403 {
		t.Fatalf("alice pruned: %d", code)
	}
	if code, _ := f.raw(t, f.admin, "POST", base+"/prune", `{}`); code != 400 {
		t.Fatalf("prune without rules: %d", code)
	}
	var res bsync.PruneResult
	if code := f.do(t, f.admin, "POST", base+"/prune", `{"keep_last":1}`, &res); code != 200 || len(res.Kept) != 1 || len(res.Forgotten) != 2 {
		t.Fatalf("prune: %+v", res)
	}
	var list []SnapshotSummary
	if f.do(t, f.alice, "GET", base, "", &list); len(list) != 1 || list[0].ID != res.Kept[0] {
		t.Fatalf("after prune: %+v", list)
	}
	// Bob's token sees none of alice's snapshots, and his own list is empty.
	if code, _ := f.raw(t, f.bob, "GET", base, ""); code != 403 && code != 404 {
		t.Fatalf("bob listed alice's snapshots: %d", code)
	}
	if code := f.do(t, f.bob, "GET", "/v1/workspaces/bob/snapshots", "", &list); code != 200 || len(list) != 0 {
		t.Fatalf("bob's list: %d %v", code, list)
	}
}

// postSSE POSTs body asking for an event stream. A request refused before
// the work starts answers as JSON (no events); otherwise every event is
// returned.
func postSSE(t *testing.T, f *fixture, token, path, body string) []sseEvent {
	t.Helper()
	req, _ := http.NewRequest("POST", f.ts.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		return nil
	}
	return parseSSE(resp.Body, 0)
}
