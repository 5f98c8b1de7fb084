package cli

import (
	"errors"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/fusefs"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// MountCmd mounts a workspace's files for a human, in the foreground.
type MountCmd struct {
	Workspace  string `arg:"" help:"Workspace id."`
	Dir        string `arg:"" type:"existingdir" help:"Directory to mount on."`
	RW         bool   `name:"rw" help:"Mount read-write (the workspace's path policy and quotas still apply). Default: read-only."`
	AllowOther bool   `name:"allow-other" help:"Let other local users enter the mount (the view does not check file modes for them)."`
}

// Run mounts and serves until SIGINT/SIGTERM or `bulkhead umount`.
func (c *MountCmd) Run(g *Globals) error {
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

	stopped := make(chan struct{})
	go func() { srv.Wait(); close(stopped) }()
	select {
	case <-stopped: // unmounted from outside
		return nil
	case <-g.Context().Done():
	}
	if err := srv.Unmount(); err != nil {
		return err
	}
	return nil
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
