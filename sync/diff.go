package sync

import (
	"slices"
	"strings"
)

// ChangeKind classifies one difference between two snapshots.
type ChangeKind string

// Change kinds, in the order Diff reports them per path.
const (
	Added       ChangeKind = "added"
	Removed     ChangeKind = "removed"
	Modified    ChangeKind = "modified" // content (or symlink target) differs
	TypeChanged ChangeKind = "type"     // e.g. a file became a directory
	MetaChanged ChangeKind = "meta"     // only mode or mtime differ
)

// Change is one path that differs between two snapshots.
type Change struct {
	Path string     `json:"path"`
	Kind ChangeKind `json:"kind"`
	Old  *Node      `json:"old,omitempty"`
	New  *Node      `json:"new,omitempty"`
}

// DiffResult lists the changes from one snapshot to another, sorted by path,
// and whether the state stream and config differ.
type DiffResult struct {
	Changes       []Change `json:"changes"`
	StateChanged  bool     `json:"state_changed"`
	ConfigChanged bool     `json:"config_changed"`
}

// Diff compares two snapshots by their manifests alone (no data is read):
// content is compared by chunk ids.
func Diff(from, to *Snapshot) DiffResult {
	old := make(map[string]*Node, len(from.Tree))
	for i := range from.Tree {
		old[from.Tree[i].Path] = &from.Tree[i]
	}
	var res DiffResult
	for i := range to.Tree {
		n := &to.Tree[i]
		o := old[n.Path]
		delete(old, n.Path)
		switch {
		case o == nil:
			res.Changes = append(res.Changes, Change{Path: n.Path, Kind: Added, New: n})
		case o.Type != n.Type:
			res.Changes = append(res.Changes, Change{Path: n.Path, Kind: TypeChanged, Old: o, New: n})
		case o.Size != n.Size || o.Target != n.Target || !slices.Equal(o.Chunks, n.Chunks):
			res.Changes = append(res.Changes, Change{Path: n.Path, Kind: Modified, Old: o, New: n})
		case o.Mode != n.Mode || o.MTime != n.MTime && n.Type != TypeDir:
			res.Changes = append(res.Changes, Change{Path: n.Path, Kind: MetaChanged, Old: o, New: n})
		}
	}
	for _, o := range old {
		res.Changes = append(res.Changes, Change{Path: o.Path, Kind: Removed, Old: o})
	}
	slices.SortFunc(res.Changes, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	res.StateChanged = !sameContent(from.State, to.State)
	res.ConfigChanged = string(from.Config) != string(to.Config)
	return res
}

func sameContent(a, b *Content) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Size == b.Size && slices.Equal(a.Chunks, b.Chunks)
}
