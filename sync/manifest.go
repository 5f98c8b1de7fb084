package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// NodeType is the kind of a tree entry.
type NodeType string

// Node types stored in a snapshot. Other kinds (devices, fifos, sockets) are
// skipped by Backup and counted in Stats.Skipped.
const (
	TypeDir     NodeType = "dir"
	TypeFile    NodeType = "file"
	TypeSymlink NodeType = "symlink"
)

// ChunkRef is one chunk of a file or stream.
type ChunkRef struct {
	ID   ID     `json:"id"`
	Size uint32 `json:"n"`
}

// Node is one entry of a snapshot's tree. Path is slash-separated and
// relative to the backed-up directory; the directory itself is ".".
type Node struct {
	Path   string     `json:"path"`
	Type   NodeType   `json:"type"`
	Mode   uint32     `json:"mode"`             // permission, setuid, setgid and sticky bits (0o7777)
	Size   int64      `json:"size,omitempty"`   // file size
	MTime  int64      `json:"mtime"`            // unix nanoseconds
	Target string     `json:"target,omitempty"` // symlink target
	Chunks []ChunkRef `json:"chunks,omitempty"`
	// Change detection for the next backup (not restored).
	Inode uint64 `json:"ino,omitempty"`
	CTime int64  `json:"ctime,omitempty"`
}

// Content is a chunked byte stream (the state stream).
type Content struct {
	Size   int64      `json:"size"`
	Chunks []ChunkRef `json:"chunks"`
}

// Stats summarise one backup.
type Stats struct {
	Files         int64         `json:"files"`
	Dirs          int64         `json:"dirs"`
	Symlinks      int64         `json:"symlinks"`
	Skipped       int64         `json:"skipped,omitempty"`
	Bytes         int64         `json:"bytes"`          // logical bytes (files + state)
	BytesRead     int64         `json:"bytes_read"`     // bytes read and chunked (the rest came unchanged from the parent)
	NewBlobs      int64         `json:"new_blobs"`      // blobs not already in the repository
	BytesNew      int64         `json:"bytes_new"`      // plaintext bytes of new blobs
	BytesUploaded int64         `json:"bytes_uploaded"` // pack bytes written
	Packs         int64         `json:"packs"`
	Duration      time.Duration `json:"duration"`
}

// Snapshot is a manifest: one point-in-time copy of a tree.
type Snapshot struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Parent  string    `json:"parent,omitempty"`
	Host    string    `json:"host,omitempty"`
	Tags    []string  `json:"tags,omitempty"`
	Tree    []Node    `json:"tree"`
	State   *Content  `json:"state,omitempty"`
	Config  []byte    `json:"config,omitempty"`
	Stats   Stats     `json:"stats"`
}

const manifestVersion = 1

func snapshotName(id string) string { return "snapshots/" + id }

// validSnapshotID: 16 lowercase hex digits.
func validSnapshotID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseManifest decodes and validates a snapshot manifest's plaintext JSON.
// Everything Restore relies on is checked here: paths are clean, relative
// and unique, every parent is a directory listed before its children (so a
// symlink can never be a parent), sizes match chunk lists, modes hold only
// permission bits.
func ParseManifest(data []byte) (*Snapshot, error) {
	s, err := decodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrCorrupt, s.ID, err)
	}
	return s, nil
}

func (s *Snapshot) validate() error {
	if s.Version != manifestVersion {
		return fmt.Errorf("version %d, want %d", s.Version, manifestVersion)
	}
	if !validSnapshotID(s.ID) {
		return fmt.Errorf("bad id %q", s.ID)
	}
	if s.Parent != "" && !validSnapshotID(s.Parent) {
		return fmt.Errorf("bad parent id %q", s.Parent)
	}
	if len(s.Tree) == 0 || s.Tree[0].Path != "." || s.Tree[0].Type != TypeDir {
		return errors.New("tree does not start with the root directory")
	}
	dirs := map[string]bool{}
	seen := map[string]bool{}
	for i := range s.Tree {
		n := &s.Tree[i]
		if i > 0 {
			if !validRelPath(n.Path) {
				return fmt.Errorf("node %d: bad path %q", i, n.Path)
			}
			if !dirs[path.Dir(n.Path)] {
				return fmt.Errorf("node %q: parent is not a directory listed before it", n.Path)
			}
			if seen[n.Path] {
				return fmt.Errorf("node %q: listed twice", n.Path)
			}
			seen[n.Path] = true
		}
		if n.Mode&^0o7777 != 0 {
			return fmt.Errorf("node %q: mode %o has non-permission bits", n.Path, n.Mode)
		}
		switch n.Type {
		case TypeDir:
			if n.Size != 0 || len(n.Chunks) > 0 || n.Target != "" {
				return fmt.Errorf("node %q: directory with content", n.Path)
			}
			dirs[n.Path] = true
		case TypeFile:
			if n.Target != "" {
				return fmt.Errorf("node %q: file with a link target", n.Path)
			}
			if err := checkChunks(n.Size, n.Chunks); err != nil {
				return fmt.Errorf("node %q: %v", n.Path, err)
			}
		case TypeSymlink:
			if n.Target == "" || strings.Contains(n.Target, "\x00") || n.Size != 0 || len(n.Chunks) > 0 {
				return fmt.Errorf("node %q: bad symlink", n.Path)
			}
		default:
			return fmt.Errorf("node %q: unknown type %q", n.Path, n.Type)
		}
	}
	if s.State != nil {
		if err := checkChunks(s.State.Size, s.State.Chunks); err != nil {
			return fmt.Errorf("state: %v", err)
		}
	}
	return nil
}

// validRelPath: a relative slash path of non-empty elements other than "."
// and "..", without NUL. Any other byte is allowed (Linux names need not be
// UTF-8; see Node's JSON encoding).
func validRelPath(p string) bool {
	if p == "" || strings.Contains(p, "\x00") {
		return false
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return false
		}
	}
	return true
}

// Manifest JSON: paths and link targets that are not valid UTF-8 (legal on
// Linux) would be mangled by encoding/json, so they travel as base64 in
// raw_path / raw_target instead. The conversion happens once per manifest
// (Snapshot's MarshalJSON, ParseManifest), not per node, which keeps
// decoding a 10k-file tree cheap.
type nodeFields Node

type nodeWire struct {
	nodeFields
	RawPath   []byte `json:"raw_path,omitempty"`
	RawTarget []byte `json:"raw_target,omitempty"`
}

type snapshotFields Snapshot

type snapshotWire struct {
	snapshotFields
	Tree []nodeWire `json:"tree"` // shadows snapshotFields.Tree
}

// MarshalJSON encodes the manifest, moving non-UTF-8 names to raw fields.
func (s Snapshot) MarshalJSON() ([]byte, error) { return json.Marshal(s.wire()) }

// wire returns the manifest's JSON form. Encoding it directly, rather than
// through MarshalJSON, spares encoding/json a second pass that validates
// and compacts a Marshaler's output.
func (s *Snapshot) wire() *snapshotWire {
	w := &snapshotWire{snapshotFields: snapshotFields(*s), Tree: make([]nodeWire, len(s.Tree))}
	w.snapshotFields.Tree = nil
	for i, n := range s.Tree {
		nw := nodeWire{nodeFields: nodeFields(n)}
		if !utf8.ValidString(n.Path) {
			nw.RawPath, nw.Path = []byte(n.Path), ""
		}
		if !utf8.ValidString(n.Target) {
			nw.RawTarget, nw.Target = []byte(n.Target), ""
		}
		w.Tree[i] = nw
	}
	return w
}

// decodeManifest reverses MarshalJSON; unknown fields are an error.
func decodeManifest(data []byte) (*Snapshot, error) {
	var w snapshotWire
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	s := Snapshot(w.snapshotFields)
	s.Tree = make([]Node, len(w.Tree))
	for i, nw := range w.Tree {
		if nw.RawPath != nil {
			if nw.Path != "" || utf8.Valid(nw.RawPath) {
				return nil, fmt.Errorf("node %d: raw_path with a UTF-8 path", i)
			}
			nw.Path = string(nw.RawPath)
		}
		if nw.RawTarget != nil {
			if nw.Target != "" || utf8.Valid(nw.RawTarget) {
				return nil, fmt.Errorf("node %d: raw_target with a UTF-8 target", i)
			}
			nw.Target = string(nw.RawTarget)
		}
		s.Tree[i] = Node(nw.nodeFields)
	}
	return &s, nil
}

func checkChunks(size int64, chunks []ChunkRef) error {
	var sum int64
	for _, c := range chunks {
		if c.Size == 0 || c.Size > MaxChunkSize {
			return fmt.Errorf("chunk %s has size %d", c.ID, c.Size)
		}
		sum += int64(c.Size)
	}
	if sum != size {
		return fmt.Errorf("chunks hold %d bytes, size is %d", sum, size)
	}
	return nil
}

// Snapshots lists the repository's snapshots, oldest first. Manifests that
// cannot be read are skipped and reported in the returned error (wrapping
// ErrCorrupt) alongside the readable ones.
func (r *Repository) Snapshots(ctx context.Context) ([]*Snapshot, error) {
	ids, err := r.snapshotIDs(ctx)
	if err != nil {
		return nil, err
	}
	snaps := make([]*Snapshot, len(ids))
	errs := make([]error, len(ids))
	parallel(ctx, len(ids), 8, func(i int) { snaps[i], errs[i] = r.LoadSnapshot(ctx, ids[i]) })
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var out []*Snapshot
	var bad []error
	for i, s := range snaps {
		switch {
		case errs[i] == nil:
			out = append(out, s)
		case errors.Is(errs[i], ErrNotFound):
			// forgotten while listing
		case errors.Is(errs[i], ErrCorrupt):
			bad = append(bad, errs[i])
		default:
			return nil, fmt.Errorf("list snapshots: %w", errs[i])
		}
	}
	slices.SortFunc(out, func(a, b *Snapshot) int { return a.Time.Compare(b.Time) })
	return out, errors.Join(bad...)
}

// LoadSnapshot reads and validates one manifest by id.
func (r *Repository) LoadSnapshot(ctx context.Context, id string) (*Snapshot, error) {
	if !validSnapshotID(id) {
		return nil, fmt.Errorf("load snapshot %q: %w", id, ErrNotFound)
	}
	plain, err := r.readSealed(ctx, snapshotName(id), "snapshot:"+id)
	if err != nil {
		return nil, fmt.Errorf("load snapshot %s: %w", id, err)
	}
	s, err := ParseManifest(plain)
	if err != nil {
		return nil, fmt.Errorf("load snapshot %s: %w", id, err)
	}
	if s.ID != id {
		return nil, fmt.Errorf("load snapshot %s: %w: manifest names snapshot %s", id, ErrCorrupt, s.ID)
	}
	return s, nil
}

// snapshotIDs lists the ids of stored manifests, oldest first by the
// store's modification time (a manifest is written once).
func (r *Repository) snapshotIDs(ctx context.Context) ([]string, error) {
	var objs []ObjectInfo
	if err := r.store.List(ctx, "snapshots/", func(oi ObjectInfo) error {
		if validSnapshotID(strings.TrimPrefix(oi.Name, "snapshots/")) {
			objs = append(objs, oi)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	slices.SortFunc(objs, func(a, b ObjectInfo) int {
		if c := a.ModTime.Compare(b.ModTime); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	ids := make([]string, len(objs))
	for i, oi := range objs {
		ids[i] = strings.TrimPrefix(oi.Name, "snapshots/")
	}
	return ids, nil
}

// FindSnapshot resolves "latest", a full id or a unique id prefix, reading
// only the manifest it picks.
func (r *Repository) FindSnapshot(ctx context.Context, ref string) (*Snapshot, error) {
	ids, err := r.snapshotIDs(ctx)
	if err != nil {
		return nil, err
	}
	var found string
	switch {
	case ref == "latest" && len(ids) > 0:
		found = ids[len(ids)-1]
	case ref != "latest" && ref != "":
		for _, id := range ids {
			if strings.HasPrefix(id, ref) {
				if found != "" {
					return nil, fmt.Errorf("find snapshot %q: ambiguous prefix", ref)
				}
				found = id
			}
		}
	}
	if found == "" {
		return nil, fmt.Errorf("find snapshot %q: %w", ref, ErrNotFound)
	}
	return r.LoadSnapshot(ctx, found)
}

func (r *Repository) saveSnapshot(ctx context.Context, s *Snapshot) error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	return r.writeJSON(ctx, snapshotName(s.ID), "snapshot:"+s.ID, s.wire(), true)
}

// forget deletes a snapshot's manifest; its data goes at the next prune.
func (r *Repository) forget(ctx context.Context, id string) error {
	if err := r.store.Delete(ctx, snapshotName(id)); err != nil {
		return fmt.Errorf("forget snapshot %s: %w", id, err)
	}
	return nil
}

// blobs calls fn for every chunk the snapshot references, with the path of
// the file it belongs to ("" for the state stream).
func (s *Snapshot) blobs(fn func(path string, c ChunkRef)) {
	for i := range s.Tree {
		for _, c := range s.Tree[i].Chunks {
			fn(s.Tree[i].Path, c)
		}
	}
	if s.State != nil {
		for _, c := range s.State.Chunks {
			fn("", c)
		}
	}
}
