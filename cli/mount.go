package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/fusefs"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// MountCmd mounts a workspace's files for a human, in the foreground.
type MountCmd struct {
	Workspace  string     `arg:"" help:"Workspace id, or WS@SNAPSHOT (an id, a prefix or 'latest') for a read-only view of a snapshot."`
	Dir        string     `arg:"" type:"existingdir" help:"Directory to mount on."`
	RW         bool       `name:"rw" help:"Mount read-write (the workspace's path policy and quotas still apply). Default: read-only."`
	AllowOther bool       `name:"allow-other" help:"Let other local users enter the mount (the view does not check file modes for them)."`
	StoreFlags `embed:""` // where WS@SNAPSHOT is read from
}

// Run mounts and serves until SIGINT/SIGTERM or `bulkhead umount`.
func (c *MountCmd) Run(g *Globals) error {
	if id, snap, ok := strings.Cut(c.Workspace, "@"); ok {
		return c.mountSnapshot(g, id, snap)
	}
	if err := workspace.ValidateID(c.Workspace); err != nil {
		return &UsageError{err}
	}
	be, err := g.Backend()
	if err != nil {
		return err
	}
	w, err := be.Get(g.Context(), c.Workspace)
	if err != nil {
		return err
	}
	// The mount outlives this command's use of the state dir: let the
	// daemon or other commands have it back while we serve.
	g.releaseBackend()

	pol, err := viewPolicy(w.Config.Files)
	if err != nil {
		return fmt.Errorf("workspace %s file policy: %w", w.ID, err)
	}
	opts := fusefs.Options{
		Policy:       pol,
		ReadOnly:     !c.RW,
		NoAllowOther: !c.AllowOther,
		// A person looks at files the sandbox and the agent change behind
		// this mount's back: cache for a second, not the sandbox view's 10.
		CacheTimeout: time.Second,
		Logger:       g.Log.With("workspace", w.ID),
	}
	files := g.filesDir(w.ID)
	if c.RW {
		q, err := fusefs.NewQuota(g.Context(), files, fusefs.Limits{Bytes: int64(w.Config.Limits.Disk), Inodes: w.Config.Limits.Inodes})
		if err != nil {
			return err
		}
		opts.Quota = q
	}
	srv, err := fusefs.Mount(g.Context(), files, c.Dir, opts)
	if err != nil {
		return err
	}
	mode := "read-only"
	if c.RW {
		mode = "read-write"
	}
	fmt.Fprintf(g.Stderr, "workspace %s mounted %s on %s; Ctrl-C or `bulkhead umount %s` to unmount\n", w.ID, mode, c.Dir, c.Dir)

	return serveUntilDone(g, srv)
}

// mountSnapshot serves one snapshot read-only, fetching and authenticating
// its blobs from the repository on demand.
func (c *MountCmd) mountSnapshot(g *Globals, id, ref string) error {
	if c.RW {
		return &UsageError{fmt.Errorf("a snapshot is mounted read-only; drop --rw")}
	}
	if ref == "" {
		return &UsageError{fmt.Errorf("%s@: give a snapshot id, a prefix of one, or 'latest'", id)}
	}
	repo, err := (&RepoFlags{StoreFlags: c.StoreFlags}).openRepo(g, id, false)
	if err != nil {
		return err
	}
	snap, err := repo.FindSnapshot(g.Context(), ref)
	if err != nil {
		return err
	}
	view, err := repo.FS(g.Context(), snap)
	if err != nil {
		return err
	}
	// The repository holds what it needs; give the state dir back.
	g.releaseBackend()
	srv, err := fusefs.MountFS(g.Context(), view, c.Dir, g.Log)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "snapshot %s of %s mounted read-only on %s; Ctrl-C or `bulkhead umount %s` to unmount\n", snap.ID, id, c.Dir, c.Dir)
	return serveUntilDone(g, srv)
}

// serveUntilDone waits for an unmount from outside or a signal.
func serveUntilDone(g *Globals, srv *fusefs.Server) error {
	stopped := make(chan struct{})
	go func() { srv.Wait(); close(stopped) }()
	select {
	case <-stopped:
		return nil
	case <-g.Context().Done():
	}
	return srv.Unmount()
}

// UmountCmd unmounts a view made by `bulkhead mount`.
type UmountCmd struct {
	Dir string `arg:"" help:"Mountpoint."`
}

// Run unmounts.
func (c *UmountCmd) Run(g *Globals) error {
	err := fusefs.Unmount(c.Dir)
	if errors.Is(err, fusefs.ErrNotMounted) {
		return &UsageError{err}
	}
	return err
}

// viewPolicy compiles a workspace's file policy for the view.
func viewPolicy(fp workspace.FilePolicy) (*fusefs.Policy, error) {
	return fusefs.NewPolicy(fusefs.PolicyConfig{
		Deny:              fp.Deny,
		ReadOnly:          fp.ReadOnly,
		AllowSpecialFiles: fp.AllowDevices,
	})
}

// releaseBackend closes the state dir if this process opened it, for
// commands that keep running after they have read what they need.
func (g *Globals) releaseBackend() {
	if g.svc != nil {
		if err := g.svc.Close(); err != nil {
			g.Log.Warn("close state dir", "err", err)
		}
		g.svc = nil
	}
	g.backend = nil
}
