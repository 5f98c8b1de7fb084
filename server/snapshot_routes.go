package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// Request and response bodies of the snapshot routes.
type (
	// BackupRequest is the (optional) body of POST .../snapshots.
	BackupRequest struct {
		Tags []string `json:"tags,omitempty"`
	}
	// SnapshotSummary is a snapshot without its tree.
	SnapshotSummary struct {
		ID     string        `json:"id"`
		Time   time.Time     `json:"time"`
		Parent string        `json:"parent,omitempty"`
		Host   string        `json:"host,omitempty"`
		Tags   []string      `json:"tags,omitempty"`
		Stats  SnapshotStats `json:"stats"`
	}
	// SnapshotStats counts what a snapshot holds and what its backup wrote.
	SnapshotStats struct {
		Files         int64 `json:"files"`
		Dirs          int64 `json:"dirs"`
		Symlinks      int64 `json:"symlinks"`
		Bytes         int64 `json:"bytes"`
		BytesNew      int64 `json:"bytes_new"`
		BytesUploaded int64 `json:"bytes_uploaded"`
		DurationMS    int64 `json:"duration_ms"`
	}
	// RestoreRequest is the body of POST .../snapshots/{snap}/restore. An
	// in-place restore replaces the workspace's files and state and needs
	// confirm; to forks into a new workspace (admin only).
	RestoreRequest struct {
		Confirm bool   `json:"confirm,omitempty"`
		To      string `json:"to,omitempty"`
	}
	// RestoreResponse says what was restored where.
	RestoreResponse struct {
		Snapshot  string `json:"snapshot"`
		Workspace string `json:"workspace"`
		Files     int64  `json:"files"`
	}
	// VerifyRequest is the (optional) body of POST .../snapshots/verify.
	VerifyRequest struct {
		// ReadData is the fraction of packs to download and authenticate
		// (0 = structure only, 1 = all).
		ReadData float64 `json:"read_data"`
	}
	// PruneRequest is the body of POST .../snapshots/prune.
	PruneRequest struct {
		KeepLast   int  `json:"keep_last,omitempty"`
		KeepHourly int  `json:"keep_hourly,omitempty"`
		KeepDaily  int  `json:"keep_daily,omitempty"`
		KeepWeekly int  `json:"keep_weekly,omitempty"`
		DryRun     bool `json:"dry_run,omitempty"`
	}
)

func (s *Server) snapshotRoutes() []route {
	const p = "/v1/workspaces/{ws}/snapshots"
	return []route{
		{method: "POST", pattern: p, scope: scopeWorkspace, summary: "Snapshot the workspace's files, state and config (the sandbox is frozen meanwhile); with Accept: text/event-stream, progress events then a result or error event", req: BackupRequest{}, resp: SnapshotSummary{}, status: 201, h: s.backup},
		{method: "GET", pattern: p, scope: scopeWorkspace, summary: "List snapshots, oldest first", resp: []SnapshotSummary{}, h: s.listSnapshots},
		{method: "POST", pattern: p + "/{snap}/restore", scope: scopeWorkspace, summary: "Restore a snapshot (id, prefix or 'latest') in place ({\"confirm\":true}) or into a new workspace ({\"to\":id}, admin only); with Accept: text/event-stream, progress events then a result or error event", req: RestoreRequest{}, resp: RestoreResponse{}, h: s.restoreSnapshot},
		{method: "GET", pattern: p + "/diff", scope: scopeWorkspace, summary: "Compare two snapshots (?from=&to=)", resp: bsync.DiffResult{}, h: s.diffSnapshots},
		{method: "POST", pattern: p + "/verify", scope: scopeWorkspace, summary: "Check the repository's structure and authenticate a fraction of its packs", req: VerifyRequest{}, resp: bsync.VerifyReport{}, h: s.verifySnapshots},
		{method: "POST", pattern: p + "/prune", scope: scopeAdmin, summary: "Forget snapshots outside a retention policy and delete unused data", req: PruneRequest{}, resp: bsync.PruneResult{}, h: s.pruneSnapshots},
	}
}

func summarizeSnapshot(sn *bsync.Snapshot) SnapshotSummary {
	st := sn.Stats
	return SnapshotSummary{ID: sn.ID, Time: sn.Time, Parent: sn.Parent, Host: sn.Host, Tags: sn.Tags, Stats: SnapshotStats{
		Files: st.Files, Dirs: st.Dirs, Symlinks: st.Symlinks, Bytes: st.Bytes, BytesNew: st.BytesNew,
		BytesUploaded: st.BytesUploaded, DurationMS: st.Duration.Milliseconds(),
	}}
}

// snapshotStores is where the server keeps snapshot repositories.
func (s *Server) snapshotStores() workspace.SnapshotStores {
	if s.opts.Snapshots != nil {
		return s.opts.Snapshots
	}
	return workspace.LocalSnapshotStores(s.svc.DefaultSnapshotDir())
}

// openSnapshots opens {ws}'s repository.
func (s *Server) openSnapshots(r *http.Request, create bool) (*bsync.Repository, error) {
	return s.svc.SnapshotRepo(r.Context(), s.snapshotStores(), r.PathValue("ws"), create)
}

// snapshotErr maps the repository's sentinels to API errors; others go to
// toAPIError.
func snapshotErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bsync.ErrNoRepository), errors.Is(err, bsync.ErrNotFound):
		return apiErr(404, CodeNotFound, "%s", err.Error())
	case errors.Is(err, bsync.ErrLocked):
		return apiErr(409, CodeInUse, "%s", err.Error())
	}
	return err
}

// decodeOptional decodes a JSON body if one was sent.
func (s *Server) decodeOptional(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return decodeJSON(w, r, s.opts.MaxBody, v)
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request) error {
	var req BackupRequest
	if err := s.decodeOptional(w, r, &req); err != nil {
		return err
	}
	if len(req.Tags) > 16 {
		return apiErr(400, CodeBadRequest, "at most 16 tags")
	}
	for _, t := range req.Tags {
		if t == "" || len(t) > 64 {
			return apiErr(400, CodeBadRequest, "tags must be 1 to 64 bytes")
		}
	}
	repo, err := s.openSnapshots(r, true)
	if err != nil {
		return snapshotErr(err)
	}
	opts := workspace.BackupOptions{Tags: req.Tags}
	if wantsSSE(r) {
		sse := newSSE(w)
		opts.Progress = progressEvents(sse)
		snap, err := s.svc.Backup(r.Context(), repo, r.PathValue("ws"), opts)
		return sseResult(sse, func() any { return summarizeSnapshot(snap) }, snapshotErr(err))
	}
	snap, err := s.svc.Backup(r.Context(), repo, r.PathValue("ws"), opts)
	if err != nil {
		return snapshotErr(err)
	}
	writeJSON(w, 201, summarizeSnapshot(snap))
	return nil
}

// ProgressEvent is the data of a "progress" event of a long snapshot
// operation streamed as server-sent events.
type ProgressEvent struct {
	Op         string  `json:"op"`
	Files      int64   `json:"files"`
	TotalFiles int64   `json:"total_files"`
	Bytes      int64   `json:"bytes"`
	TotalBytes int64   `json:"total_bytes"`
	Uploaded   int64   `json:"transferred"`
	ElapsedMS  int64   `json:"elapsed_ms"`
	Rate       float64 `json:"bytes_per_second"`
	ETAMS      int64   `json:"eta_ms"`
	Done       bool    `json:"done"`
}

func wantsSSE(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// progressEvents sends each progress report as a "progress" event.
func progressEvents(sse *sseWriter) bsync.ProgressFunc {
	return func(p bsync.Progress) {
		b, _ := json.Marshal(ProgressEvent{Op: p.Op, Files: p.Files, TotalFiles: p.TotalFiles, Bytes: p.Bytes, TotalBytes: p.TotalBytes,
			Uploaded: p.Uploaded, ElapsedMS: p.Elapsed.Milliseconds(), Rate: p.Rate, ETAMS: p.ETA.Milliseconds(), Done: p.Done})
		_ = sse.event("", "progress", b)
	}
}

// sseResult ends a streamed operation: a "result" event with result(), or
// an "error" event carrying the API error an ordinary request would have
// got.
func sseResult(sse *sseWriter, result func() any, err error) error {
	if err != nil {
		ae := toAPIError(err)
		b, _ := json.Marshal(map[string]any{"status": ae.Status, "code": ae.Code, "error": ae.Message})
		_ = sse.event("", "error", b)
		return nil
	}
	b, _ := json.Marshal(result())
	_ = sse.event("", "result", b)
	return nil
}

func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request) error {
	repo, err := s.openSnapshots(r, false)
	if errors.Is(err, bsync.ErrNoRepository) {
		writeJSON(w, 200, []SnapshotSummary{})
		return nil
	}
	if err != nil {
		return err
	}
	snaps, err := repo.Snapshots(r.Context())
	if err != nil {
		return err
	}
	out := make([]SnapshotSummary, 0, len(snaps))
	for _, sn := range snaps {
		out = append(out, summarizeSnapshot(sn))
	}
	writeJSON(w, 200, out)
	return nil
}

func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request) error {
	var req RestoreRequest
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	switch {
	case req.To != "" && !principal(r.Context()).Admin():
		return apiErr(403, CodeForbidden, "restoring into a new workspace needs an admin token")
	case req.To == "" && !req.Confirm:
		return apiErr(400, CodeBadRequest, "an in-place restore replaces the workspace's files and state: send {\"confirm\":true}, or {\"to\":\"new-id\"} to fork")
	}
	if req.To != "" {
		if err := workspace.ValidateID(req.To); err != nil {
			return err
		}
	}
	repo, err := s.openSnapshots(r, false)
	if err != nil {
		return snapshotErr(err)
	}
	snap, err := repo.FindSnapshot(r.Context(), r.PathValue("snap"))
	if err != nil {
		return snapshotErr(err)
	}
	opts := workspace.RestoreOptions{To: req.To}
	if wantsSSE(r) {
		sse := newSSE(w)
		opts.Progress = progressEvents(sse)
		target, err := s.svc.Restore(r.Context(), repo, r.PathValue("ws"), snap, opts)
		return sseResult(sse, func() any { return RestoreResponse{Snapshot: snap.ID, Workspace: target, Files: snap.Stats.Files} }, snapshotErr(err))
	}
	target, err := s.svc.Restore(r.Context(), repo, r.PathValue("ws"), snap, opts)
	if err != nil {
		return snapshotErr(err)
	}
	writeJSON(w, 200, RestoreResponse{Snapshot: snap.ID, Workspace: target, Files: snap.Stats.Files})
	return nil
}

func (s *Server) diffSnapshots(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	from, to := q.Get("from"), q.Get("to")
	if from == "" || to == "" {
		return apiErr(400, CodeBadRequest, "give ?from= and ?to= snapshot ids")
	}
	repo, err := s.openSnapshots(r, false)
	if err != nil {
		return snapshotErr(err)
	}
	a, err := repo.FindSnapshot(r.Context(), from)
	if err != nil {
		return snapshotErr(err)
	}
	b, err := repo.FindSnapshot(r.Context(), to)
	if err != nil {
		return snapshotErr(err)
	}
	d := bsync.Diff(a, b)
	if d.Changes == nil {
		d.Changes = []bsync.Change{}
	}
	writeJSON(w, 200, d)
	return nil
}

func (s *Server) verifySnapshots(w http.ResponseWriter, r *http.Request) error {
	req := VerifyRequest{ReadData: 0.1}
	if err := s.decodeOptional(w, r, &req); err != nil {
		return err
	}
	if req.ReadData < 0 || req.ReadData > 1 {
		return apiErr(400, CodeBadRequest, "read_data must be between 0 and 1")
	}
	repo, err := s.openSnapshots(r, false)
	if err != nil {
		return snapshotErr(err)
	}
	rep, err := repo.Verify(r.Context(), bsync.VerifyOptions{ReadData: req.ReadData})
	if err != nil {
		return snapshotErr(err)
	}
	if rep.Problems == nil {
		rep.Problems = []bsync.Problem{}
	}
	writeJSON(w, 200, rep)
	return nil
}

func (s *Server) pruneSnapshots(w http.ResponseWriter, r *http.Request) error {
	var req PruneRequest
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	keep := bsync.Retention{Last: req.KeepLast, Hourly: req.KeepHourly, Daily: req.KeepDaily, Weekly: req.KeepWeekly}
	if keep == (bsync.Retention{}) {
		return apiErr(400, CodeBadRequest, "give at least one keep_* rule")
	}
	repo, err := s.openSnapshots(r, false)
	if err != nil {
		return snapshotErr(err)
	}
	res, err := repo.Prune(r.Context(), bsync.PruneOptions{Keep: keep, DryRun: req.DryRun})
	if err != nil {
		return snapshotErr(err)
	}
	writeJSON(w, 200, res)
	return nil
}
