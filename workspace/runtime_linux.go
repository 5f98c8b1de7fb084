package workspace

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	gosync "sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/fusefs"
	"github.com/bulkhead-dev/bulkhead/netguard"
	"github.com/bulkhead-dev/bulkhead/sandbox"
)

// live holds a workspace's running resources: its quota (shared by the FUSE
// view and the host-side Tree), its FUSE view and its sandbox.
type live struct {
	mu    gosync.Mutex // serialises starting and stopping
	quota *fusefs.Quota
	limit fusefs.Limits
	view  *fusefs.Server
	sb    *sandbox.Sandbox
	proxy *netguard.EgressProxy // the sandbox's egress proxy
	gen   int
	// stopped is closed once the sandbox has ended and its view is unmounted.
	stopped chan struct{}
}

type runtimeState struct {
	mu   gosync.Mutex
	live map[string]*live
}

// mountRoot holds the FUSE mountpoints, one fresh directory per mount
// generation (<id>.<gen>), so a stale mount never blocks a new one. The
// sandbox's unprivileged uid must be able to walk to its mountpoint, and the
// state dir is 0700, so as root the mountpoints live under /run/bulkhead
// (0711), in a directory named for the state dir.
func (s *Service) mountRoot() string {
	sum := sha256.Sum256([]byte(s.dir))
	name := "mnt-" + hex.EncodeToString(sum[:6])
	if os.Geteuid() == 0 {
		return filepath.Join("/run/bulkhead", name)
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		return filepath.Join(x, "bulkhead", name)
	}
	return filepath.Join(s.dir, "run", name)
}

// makeMountRoot creates the mount root, traversable but not listable by
// others.
func (s *Service) makeMountRoot() error {
	root := s.mountRoot()
	if err := os.MkdirAll(root, 0o711); err != nil {
		return err
	}
	for d := root; d != "/" && d != "." && d != s.dir; d = filepath.Dir(d) {
		if d == "/run" || d == os.Getenv("XDG_RUNTIME_DIR") {
			break
		}
		os.Chmod(d, 0o711)
	}
	return nil
}

// cleanupStaleMounts lazily unmounts FUSE views left by a crashed process.
func (s *Service) cleanupStaleMounts() {
	if _, err := os.Stat(s.mountRoot()); err != nil {
		return
	}
	gone, err := fusefs.CleanupStale(s.mountRoot())
	if err != nil {
		s.log.Warn("clean up stale mounts", "err", err)
	}
	for _, mp := range gone {
		s.log.Warn("unmounted stale FUSE view", "mountpoint", mp)
	}
	entries, _ := os.ReadDir(s.mountRoot())
	for _, e := range entries {
		os.Remove(filepath.Join(s.mountRoot(), e.Name()))
	}
}

// invalidate tells the live FUSE view, if any, that rel changed beside it
// (through the host-side Tree), so the sandbox sees the change at once.
func (l *live) invalidate(rel string) {
	l.mu.Lock()
	v := l.view
	l.mu.Unlock()
	if v != nil {
		v.Invalidate(rel)
	}
}

// FilesChanged tells workspace id's live FUSE view, if any, that its files
// changed on the host other than through Files (such as by git run in the
// files directory), so the sandbox sees the new tree at once instead of
// after the view's cache timeout.
func (s *Service) FilesChanged(id string) {
	s.rt.mu.Lock()
	l := s.rt.live[id]
	s.rt.mu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	v := l.view
	l.mu.Unlock()
	if v != nil {
		v.InvalidateAll()
	}
}

func (s *Service) liveFor(id string) *live {
	s.rt.mu.Lock()
	defer s.rt.mu.Unlock()
	if s.rt.live == nil {
		s.rt.live = map[string]*live{}
	}
	l := s.rt.live[id]
	if l == nil {
		l = &live{}
		s.rt.live[id] = l
	}
	return l
}

// policyFor compiles a workspace's file policy.
func policyFor(c *Config) (*fusefs.Policy, error) {
	p, err := fusefs.NewPolicy(fusefs.PolicyConfig{Deny: c.Files.Deny, ReadOnly: c.Files.ReadOnly, AllowSpecialFiles: c.Files.AllowDevices})
	if err != nil {
		return nil, &ConfigError{Fields: []FieldError{{"files", err.Error()}}}
	}
	return p, nil
}

func quotaLimits(c *Config) fusefs.Limits {
	return fusefs.Limits{Bytes: int64(c.Limits.Disk), Inodes: c.Limits.Inodes}
}

// quotaLocked returns the workspace's shared quota, measuring the tree once.
func (s *Service) quotaLocked(ctx context.Context, l *live, w *Workspace) (*fusefs.Quota, error) {
	lim := quotaLimits(&w.Config)
	if l.quota != nil && l.limit == lim {
		return l.quota, nil
	}
	q, err := fusefs.NewQuota(ctx, s.FilesDir(w.ID), lim)
	if err != nil {
		return nil, fmt.Errorf("measure files of %s: %w", w.ID, err)
	}
	l.quota, l.limit = q, lim
	return q, nil
}

// Files opens the host-side view of workspace id's files, under the same
// policy and quota as the sandbox's /workspace. The agent's file tools use
// it. Close it when done.
func (s *Service) Files(ctx context.Context, id string) (*fusefs.Tree, error) {
	w, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	pol, err := policyFor(&w.Config)
	if err != nil {
		return nil, err
	}
	l := s.liveFor(id)
	l.mu.Lock()
	q, err := s.quotaLocked(ctx, l, w)
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return fusefs.OpenTree(s.FilesDir(id), fusefs.TreeOptions{Policy: pol, Quota: q, UID: int(w.HostUID), GID: int(w.HostGID), Chown: os.Geteuid() == 0, OnChange: l.invalidate})
}

// SandboxConfig maps a workspace to the sandbox package's terms.
func SandboxConfig(w *Workspace, workspaceDir string) sandbox.Config {
	uid, gid := w.HostUID, w.HostGID
	if os.Geteuid() != 0 {
		// Unprivileged: the only id we may map is our own.
		uid, gid = uint32(os.Getuid()), uint32(os.Getgid())
	}
	l := w.Config.Limits
	return sandbox.Config{
		ID:           w.ID,
		HostUID:      uid,
		HostGID:      gid,
		WorkspaceDir: workspaceDir,
		Limits: sandbox.Limits{
			MemoryBytes: int64(l.Memory),
			Pids:        int64(l.Pids),
			CPUs:        l.CPU,
			TmpBytes:    int64(l.Tmp),
			Timeout:     time.Duration(l.ExecTimeout),
		},
		IdleTimeout: time.Duration(l.IdleTimeout),
	}
}

// Sandbox returns workspace id's live sandbox, starting it (and its FUSE
// view at a fresh mountpoint) if none runs. The sandbox is reaped after the
// workspace's idle timeout; the view is unmounted with it.
func (s *Service) Sandbox(ctx context.Context, id string) (*sandbox.Sandbox, error) {
	w, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	l := s.liveFor(id)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sb != nil {
		select {
		case <-l.sb.Done():
			l.sb = nil
		default:
			return l.sb, nil
		}
	}
	pol, err := policyFor(&w.Config)
	if err != nil {
		return nil, err
	}
	q, err := s.quotaLocked(ctx, l, w)
	if err != nil {
		return nil, err
	}
	l.gen++
	mp := filepath.Join(s.mountRoot(), id+"."+strconv.Itoa(l.gen))
	if err := s.makeMountRoot(); err != nil {
		return nil, fmt.Errorf("sandbox %s: create mount root: %w", id, err)
	}
	if err := os.Mkdir(mp, 0o755); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("sandbox %s: create mountpoint: %w", id, err)
	}
	sbc := SandboxConfig(w, mp)
	if egressAvailable() {
		sbc.Env = append(sbc.Env, egressEnv...)
	}
	// Callers: the view is mounted allow_other for the sandbox's uid; no
	// other host user may use it even if they find the mountpoint.
	view, err := fusefs.Mount(ctx, s.FilesDir(id), mp, fusefs.Options{
		Policy:  pol,
		Quota:   q,
		Callers: []uint32{sbc.HostUID},
		// Keep kernel passthrough (native read/write speed) under the byte
		// quota: growth through passthrough is counted when a file closes,
		// so one open file may overshoot until closed, after which nothing
		// opens for writing until space is freed.
		LooseByteQuota: true,
		Logger:         s.log.With("workspace", id),
	})
	if err != nil {
		os.Remove(mp)
		return nil, fmt.Errorf("sandbox %s: FUSE view: %w", id, err)
	}
	sb, err := sandbox.Start(ctx, sbc)
	if err != nil {
		view.Unmount()
		os.Remove(mp)
		return nil, fmt.Errorf("sandbox %s: %w", id, err)
	}
	var proxy *netguard.EgressProxy
	if egressAvailable() {
		proxy, err = s.startEgress(sb, w)
	}
	if err != nil {
		sb.Close()
		view.Unmount()
		os.Remove(mp)
		return nil, fmt.Errorf("sandbox %s: egress proxy: %w", id, err)
	}
	stopped := make(chan struct{})
	l.view, l.sb, l.proxy, l.stopped = view, sb, proxy, stopped
	go func() {
		defer close(stopped)
		<-sb.Done()
		if proxy != nil {
			proxy.Close()
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if err := view.Unmount(); err != nil {
			s.log.Warn("unmount FUSE view", "workspace", id, "err", err)
		}
		os.Remove(mp)
		if l.sb == sb {
			l.sb, l.view, l.proxy = nil, nil, nil
		}
	}()
	s.log.Info("sandbox started", "workspace", id, "init_pid", sb.InitPID(), "mountpoint", mp, "passthrough", view.Passthrough())
	return sb, nil
}

// Exec runs one command in workspace id's sandbox, starting it if needed.
// A sandbox reaped between lookup and exec is restarted once.
func (s *Service) Exec(ctx context.Context, id string, cmd sandbox.Command) (sandbox.Result, error) {
	for attempt := 0; ; attempt++ {
		sb, err := s.Sandbox(ctx, id)
		if err != nil {
			return sandbox.Result{}, err
		}
		res, err := sb.Exec(ctx, cmd)
		if errors.Is(err, sandbox.ErrClosed) && attempt == 0 {
			continue
		}
		return res, err
	}
}

// StopSandbox closes workspace id's sandbox (and view) if one runs.
func (s *Service) StopSandbox(id string) error {
	s.rt.mu.Lock()
	l := s.rt.live[id]
	s.rt.mu.Unlock()
	if l == nil {
		return nil
	}
	l.mu.Lock()
	sb, stopped := l.sb, l.stopped
	l.mu.Unlock()
	if sb == nil {
		return nil
	}
	err := sb.Close()
	<-stopped // the view is unmounted by the goroutine watching the sandbox
	return err
}

// stopAll closes every sandbox (Service.Close and Delete use it).
func (s *Service) stopAll() error {
	s.rt.mu.Lock()
	ids := make([]string, 0, len(s.rt.live))
	for id := range s.rt.live {
		ids = append(ids, id)
	}
	s.rt.mu.Unlock()
	// In parallel: unmounting a view can take a while, and views do not
	// wait on each other.
	errs := make([]error, len(ids))
	var wg gosync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.StopSandbox(id)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// forget drops a deleted workspace's live state.
func (s *Service) forget(id string) {
	s.rt.mu.Lock()
	delete(s.rt.live, id)
	s.rt.mu.Unlock()
}

// applyConfig makes a changed file policy take effect at once in a running
// sandbox's view (the kernel's cached names are dropped).
func (s *Service) applyConfig(w *Workspace) {
	s.rt.mu.Lock()
	l := s.rt.live[w.ID]
	s.rt.mu.Unlock()
	if l == nil {
		return
	}
	pol, err := policyFor(&w.Config)
	if err != nil {
		return // Validate accepted the config, so this does not happen
	}
	rules, err := netguard.ParseEgressRules(w.Config.Egress.Allow)
	if err != nil {
		return // likewise validated
	}
	l.mu.Lock()
	if l.view != nil {
		l.view.SetPolicy(pol)
	}
	if l.proxy != nil {
		l.proxy.SetRules(rules)
	}
	l.mu.Unlock()
}

// startEgress serves workspace w's egress proxy on the sandbox's loopback,
// with w's rules and the node's address guard. It runs before any command,
// so nothing in the sandbox can hold the port first.
func (s *Service) startEgress(sb *sandbox.Sandbox, w *Workspace) (*netguard.EgressProxy, error) {
	return s.startEgressRules(sb, w.ID, w.Config.Egress.Allow, s.log.With("workspace", w.ID))
}

// startEgressRules serves an egress proxy allowing entries in sb, for
// workspace ws.
func (s *Service) startEgressRules(sb *sandbox.Sandbox, ws string, entries []string, log *slog.Logger) (*netguard.EgressProxy, error) {
	_, guard, err := s.ag.options()
	if err != nil {
		return nil, err
	}
	rules, err := netguard.ParseEgressRules(entries)
	if err != nil {
		return nil, err
	}
	observe := func(verdict string, bytes int64) {
		if fn := s.egressObserver(); fn != nil {
			fn(ws, verdict, bytes)
		}
	}
	p, err := netguard.NewEgressProxy(netguard.EgressOptions{Guard: guard, Rules: rules, Logger: log, Observe: observe})
	if err != nil {
		return nil, err
	}
	ln, err := sb.ListenTCP(EgressProxyAddr)
	if err != nil {
		return nil, err
	}
	go p.Serve(ln)
	return p, nil
}
