package board

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/workspace"
)

// CreateProject makes workspace id (or binds it, if it exists with empty
// files) to a clone of repo (a URL or a local path) and persona. On any
// error nothing is left behind: a workspace made here is deleted again.
func (b *Board) CreateProject(ctx context.Context, id, repo, persona string) (*Project, error) {
	if err := workspace.ValidateID(id); err != nil {
		return nil, err
	}
	if strings.TrimSpace(repo) == "" {
		return nil, fmt.Errorf("%w: no repository given: pass a URL or a local path", ErrInvalid)
	}
	if persona == "" {
		persona = "developer"
	}
	if _, err := b.Persona(persona); err != nil {
		return nil, err
	}
	if _, err := b.project(id); err == nil {
		if _, err := b.ws.Get(ctx, id); !errors.Is(err, workspace.ErrNotFound) {
			return nil, fmt.Errorf("%w: %q", ErrProjectExists, id)
		}
		// The workspace was deleted: its board goes with it.
		if err := b.purge(id); err != nil {
			return nil, err
		}
	}
	made := false
	if _, err := b.ws.Get(ctx, id); errors.Is(err, workspace.ErrNotFound) {
		cfg := workspace.DefaultConfig()
		cfg.Persona = persona
		if _, err := b.ws.Create(ctx, id, &cfg); err != nil {
			return nil, err
		}
		made = true
	} else if err != nil {
		return nil, err
	} else if _, err := b.ws.Configure(ctx, id, nil, []string{"persona=" + jsonString(persona)}); err != nil {
		return nil, err
	}
	p, err := b.bindRepo(ctx, id, repo)
	if err != nil {
		if made {
			if derr := b.ws.Delete(context.WithoutCancel(ctx), id); derr != nil {
				b.log.Error("roll back project workspace", "workspace", id, "err", derr)
			}
		}
		return nil, fmt.Errorf("create project %s: %w", id, err)
	}
	b.log.Info("project created", "workspace", id, "repo", repo, "persona", persona)
	return b.fill(ctx, p)
}

func (b *Board) bindRepo(ctx context.Context, id, repo string) (*Project, error) {
	w, err := b.ws.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	dir := b.ws.FilesDir(id)
	if ents, err := os.ReadDir(dir); err != nil {
		return nil, fmt.Errorf("read files: %w", err)
	} else if len(ents) > 0 {
		return nil, fmt.Errorf("%w: workspace %s already has files; a project clones into an empty workspace", ErrInvalid, id)
	}
	unlock := b.git.lock(dir)
	defer unlock()
	if err := gitClone(ctx, repo, dir); err != nil {
		return nil, err
	}
	branch, err := gitDefaultBranch(dir)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// The sandbox's root is the workspace's host uid; it must own the clone.
		if err := chownTree(dir, int(w.HostUID), int(w.HostGID)); err != nil {
			return nil, err
		}
	}
	p := &Project{ID: id, Repo: repo, DefaultBranch: branch, CreatedAt: b.opts.Now().UTC()}
	err = b.update(func(txn *badger.Txn) error {
		var old Project
		if found, err := getJSON(txn, projectKey(id), &old); err != nil {
			return err
		} else if found {
			return fmt.Errorf("%w: %q", ErrProjectExists, id)
		}
		return putJSON(txn, projectKey(id), p)
	})
	if err != nil {
		os.RemoveAll(dir)
		os.MkdirAll(dir, 0o700)
		return nil, err
	}
	return p, nil
}

func (b *Board) project(id string) (*Project, error) {
	var p Project
	var found bool
	err := b.db.View(func(txn *badger.Txn) error {
		var err error
		found, err = getJSON(txn, projectKey(id), &p)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %q", ErrProjectNotFound, id)
	}
	return &p, nil
}

// fill adds the settings kept in the workspace config.
func (b *Board) fill(ctx context.Context, p *Project) (*Project, error) {
	w, err := b.ws.Get(ctx, p.ID)
	if errors.Is(err, workspace.ErrNotFound) {
		return nil, fmt.Errorf("%w: %q (its workspace is gone)", ErrProjectNotFound, p.ID)
	}
	if err != nil {
		return nil, err
	}
	p.Persona, p.Provider, p.Model = w.Config.Persona, w.Config.Provider, w.Config.Model
	return p, nil
}

// Project returns project id.
func (b *Board) Project(ctx context.Context, id string) (*Project, error) {
	if err := workspace.ValidateID(id); err != nil {
		return nil, err
	}
	p, err := b.project(id)
	if err != nil {
		return nil, err
	}
	return b.fill(ctx, p)
}

// Projects lists every project whose workspace exists, by id.
func (b *Board) Projects(ctx context.Context) ([]*Project, error) {
	var all []*Project
	err := b.db.View(func(txn *badger.Txn) error {
		return scan(txn, []byte(prefixProject), func(p *Project) error { all = append(all, p); return nil })
	})
	if err != nil {
		return nil, err
	}
	out := make([]*Project, 0, len(all))
	for _, p := range all {
		if p, err := b.fill(ctx, p); err == nil {
			out = append(out, p)
		} else if !errors.Is(err, ErrProjectNotFound) {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ProjectSettings are the settings a project page changes. Empty fields
// are left alone.
type ProjectSettings struct {
	Persona  string `json:"persona,omitempty"`
	Provider string `json:"provider,omitempty"`
	Model    string `json:"model,omitempty"`
}

// Configure changes a project's settings; the persona must exist.
func (b *Board) Configure(ctx context.Context, id string, s ProjectSettings) (*Project, error) {
	p, err := b.Project(ctx, id)
	if err != nil {
		return nil, err
	}
	var sets []string
	if s.Persona != "" {
		if _, err := b.Persona(s.Persona); err != nil {
			return nil, err
		}
		sets = append(sets, "persona="+jsonString(s.Persona))
	}
	if s.Provider != "" {
		sets = append(sets, "provider="+jsonString(s.Provider))
	}
	if s.Model != "" {
		sets = append(sets, "model="+jsonString(s.Model))
	}
	if len(sets) == 0 {
		return p, nil
	}
	if _, err := b.ws.Configure(ctx, id, nil, sets); err != nil {
		return nil, err
	}
	return b.Project(ctx, id)
}

// RepoDir is the host directory of project id's clone.
func (b *Board) RepoDir(id string) string { return b.ws.FilesDir(id) }

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// purge deletes every board record of project id (after its workspace was
// deleted), in batches.
func (b *Board) purge(id string) error {
	prefixes := [][]byte{projectKey(id), seqKey(id), leaseKey(id), ticketPrefix(id), []byte(prefixComment + id + "/")}
	for _, pre := range prefixes {
		for {
			var keys [][]byte
			err := b.db.View(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: pre})
				defer it.Close()
				for it.Rewind(); it.Valid() && len(keys) < 1000; it.Next() {
					k := it.Item().KeyCopy(nil)
					// projectKey, seqKey and leaseKey are exact keys, not prefixes.
					if len(k) == len(pre) || pre[len(pre)-1] == '/' {
						keys = append(keys, k)
					}
				}
				return nil
			})
			if err != nil || len(keys) == 0 {
				if err != nil {
					return fmt.Errorf("purge board of %s: %w", id, err)
				}
				break
			}
			if err := b.update(func(txn *badger.Txn) error {
				for _, k := range keys {
					if err := txn.Delete(k); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return fmt.Errorf("purge board of %s: %w", id, err)
			}
			if len(keys) < 1000 {
				break
			}
		}
	}
	return nil
}
