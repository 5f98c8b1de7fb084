package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/term"

	"github.com/bulkhead-dev/bulkhead/credentials"

	bsync "github.com/bulkhead-dev/bulkhead/sync"
	"github.com/bulkhead-dev/bulkhead/sync/s3"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// StoreFlags say where snapshot repositories live. Each workspace has its
// own repository, <repo>/<workspace id>, keyed by a subkey of the
// workspace's data key: deleting the workspace destroys the key, and with it
// every way to read its snapshots.
type StoreFlags struct {
	Repo        string `name:"repo" env:"BULKHEAD_SNAPSHOT_REPO" placeholder:"DIR|s3://BUCKET/PREFIX" help:"Where snapshot repositories live (default <state-dir>/snapshots)."`
	S3Endpoint  string `name:"s3-endpoint" env:"BULKHEAD_S3_ENDPOINT" default:"s3.amazonaws.com" placeholder:"HOST[:PORT]" help:"S3 endpoint for s3:// repositories."`
	S3Region    string `name:"s3-region" env:"BULKHEAD_S3_REGION,AWS_REGION" help:"S3 region."`
	S3AccessKey string `name:"s3-access-key" env:"BULKHEAD_S3_ACCESS_KEY,AWS_ACCESS_KEY_ID" help:"S3 access key."`
	S3SecretKey string `name:"s3-secret-key" env:"BULKHEAD_S3_SECRET_KEY,AWS_SECRET_ACCESS_KEY" help:"S3 secret key (prefer the environment variable)."`
	S3Insecure  bool   `name:"s3-insecure" env:"BULKHEAD_S3_INSECURE" help:"Talk plain HTTP to the S3 endpoint."`
}

// RepoFlags are StoreFlags plus the output mode of snapshot commands.
type RepoFlags struct {
	StoreFlags `embed:""`
	JSON       bool `name:"json" help:"Print JSON; no progress output."`
}

// stores resolves the flags to a function opening one workspace's store.
func (f *StoreFlags) stores(svc *workspace.Service) (workspace.SnapshotStores, error) {
	if !strings.HasPrefix(f.Repo, "s3://") {
		dir := f.Repo
		if dir == "" {
			dir = svc.DefaultSnapshotDir()
		}
		return workspace.LocalSnapshotStores(dir), nil
	}
	base, err := s3.ParseURL(f.Repo)
	if err != nil {
		return nil, &UsageError{err}
	}
	base.Endpoint, base.Region, base.Insecure = f.S3Endpoint, f.S3Region, f.S3Insecure
	base.AccessKey, base.SecretKey = f.S3AccessKey, f.S3SecretKey
	return func(ctx context.Context, id string) (bsync.Store, error) {
		if err := workspace.ValidateID(id); err != nil {
			return nil, err
		}
		cfg := base
		cfg.Prefix = path.Join(base.Prefix, id)
		return s3.Open(ctx, cfg)
	}, nil
}

// openRepo opens workspace id's repository, creating it when create is set.
func (f *RepoFlags) openRepo(g *Globals, id string, create bool) (*bsync.Repository, error) {
	if err := workspace.ValidateID(id); err != nil {
		return nil, &UsageError{err}
	}
	svc, err := g.Service()
	if err != nil {
		return nil, err
	}
	stores, err := f.stores(svc)
	if err != nil {
		return nil, err
	}
	repo, err := svc.SnapshotRepo(g.Context(), stores, id, create)
	if errors.Is(err, bsync.ErrNoRepository) {
		return nil, fmt.Errorf("workspace %s has no snapshots yet (run 'bulkhead backup %s')", id, id)
	}
	return repo, err
}

// progress prints one updating line to a terminal stderr; elsewhere, and
// with --json, it prints nothing.
func (f *RepoFlags) progress(g *Globals) bsync.ProgressFunc {
	file, ok := g.Stderr.(*os.File)
	if f.JSON || !ok || !term.IsTerminal(int(file.Fd())) {
		return nil
	}
	return func(p bsync.Progress) {
		line := fmt.Sprintf("%s: %d/%d files, %s/%s, %s/s", p.Op, p.Files, p.TotalFiles,
			humanize.IBytes(uint64(p.Bytes)), humanize.IBytes(uint64(p.TotalBytes)), humanize.IBytes(uint64(p.Rate)))
		if p.ETA > 0 {
			line += ", ETA " + p.ETA.Round(time.Second).String()
		}
		end := ""
		if p.Done {
			end = "\n"
		}
		fmt.Fprintf(g.Stderr, "\r\033[K%s%s", line, end)
	}
}

func printJSON(g *Globals, v any) error {
	enc := json.NewEncoder(g.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// snapshotSummary is a snapshot without its tree.
type snapshotSummary struct {
	ID     string      `json:"id"`
	Time   time.Time   `json:"time"`
	Parent string      `json:"parent,omitempty"`
	Host   string      `json:"host,omitempty"`
	Tags   []string    `json:"tags,omitempty"`
	Stats  bsync.Stats `json:"stats"`
}

func summarize(s *bsync.Snapshot) snapshotSummary {
	return snapshotSummary{ID: s.ID, Time: s.Time, Parent: s.Parent, Host: s.Host, Tags: s.Tags, Stats: s.Stats}
}

// BackupCmd snapshots a workspace's files, state and config.
type BackupCmd struct {
	RepoFlags `embed:""`
	ID        string   `arg:"" help:"Workspace id."`
	Tag       []string `name:"tag" help:"Tag the snapshot (repeatable)."`
}

// Run backs up.
func (c *BackupCmd) Run(g *Globals) error {
	repo, err := c.openRepo(g, c.ID, true)
	if err != nil {
		return err
	}
	svc, _ := g.Service()
	snap, err := svc.Backup(g.Context(), repo, c.ID, workspace.BackupOptions{Tags: c.Tag, Progress: c.progress(g)})
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(g, summarize(snap))
	}
	fmt.Fprintf(g.Stdout, "snapshot %s of %s: %d files, %s (%s new, %s uploaded) in %v\n", snap.ID, c.ID, snap.Stats.Files,
		humanize.IBytes(uint64(snap.Stats.Bytes)), humanize.IBytes(uint64(snap.Stats.BytesNew)),
		humanize.IBytes(uint64(snap.Stats.BytesUploaded)), snap.Stats.Duration.Round(time.Millisecond))
	return nil
}

// SnapshotsCmd lists a workspace's snapshots.
type SnapshotsCmd struct {
	RepoFlags `embed:""`
	ID        string `arg:"" help:"Workspace id."`
}

// Run lists.
func (c *SnapshotsCmd) Run(g *Globals) error {
	repo, err := c.openRepo(g, c.ID, false)
	if err != nil {
		return err
	}
	// Unreadable manifests are reported after the readable ones are listed.
	snaps, listErr := repo.Snapshots(g.Context())
	if listErr != nil && !errors.Is(listErr, bsync.ErrCorrupt) {
		return listErr
	}
	if c.JSON {
		out := make([]snapshotSummary, 0, len(snaps))
		for _, s := range snaps {
			out = append(out, summarize(s))
		}
		if err := printJSON(g, out); err != nil {
			return err
		}
		return listErr
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tFILES\tSIZE\tTAGS")
	for _, s := range snaps {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", s.ID, s.Time.Local().Format(time.DateTime), s.Stats.Files,
			humanize.IBytes(uint64(s.Stats.Bytes)), strings.Join(s.Tags, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return listErr
}

// RestoreCmd restores a snapshot in place, or forks it into a new workspace.
type RestoreCmd struct {
	RepoFlags `embed:""`
	ID        string `arg:"" help:"Workspace id."`
	Snapshot  string `arg:"" help:"Snapshot id, a unique prefix of one, or 'latest'."`
	To        string `name:"to" placeholder:"NEW-ID" help:"Create workspace NEW-ID from the snapshot instead of restoring in place."`
	Yes       bool   `name:"yes" help:"Confirm an in-place restore, which replaces the workspace's files and state."`
	KeyFile   string `name:"key-file" type:"existingfile" placeholder:"FILE" help:"Read the snapshots with a key from 'creds export-key' (for a deleted workspace; needs --to; a wrapped key's passphrase is read from stdin)."`
}

// Run restores.
func (c *RestoreCmd) Run(g *Globals) error {
	if c.To == "" && !c.Yes {
		return &UsageError{fmt.Errorf("an in-place restore replaces %s's files and state: add --yes, or use --to NEW-ID", c.ID)}
	}
	if c.To != "" {
		if err := workspace.ValidateID(c.To); err != nil {
			return &UsageError{err}
		}
	}
	opts := workspace.RestoreOptions{To: c.To, Progress: c.progress(g)}
	var repo *bsync.Repository
	var err error
	if c.KeyFile != "" {
		repo, err = c.openWithKeyFile(g, &opts)
	} else {
		repo, err = c.openRepo(g, c.ID, false)
	}
	if err != nil {
		return err
	}
	snap, err := repo.FindSnapshot(g.Context(), c.Snapshot)
	if err != nil {
		return err
	}
	svc, _ := g.Service()
	target, err := svc.Restore(g.Context(), repo, c.ID, snap, opts)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(g, map[string]any{"snapshot": snap.ID, "workspace": target, "files": snap.Stats.Files})
	}
	fmt.Fprintf(g.Stdout, "restored snapshot %s of %s into %s\n", snap.ID, c.ID, target)
	return nil
}

// openWithKeyFile opens c.ID's repository with an exported key, setting
// opts to re-seal (wrapped key) or drop (bare snapshot key) credentials.
func (c *RestoreCmd) openWithKeyFile(g *Globals, opts *workspace.RestoreOptions) (*bsync.Repository, error) {
	if c.To == "" {
		return nil, &UsageError{errors.New("--key-file restores into a new workspace: add --to NEW-ID")}
	}
	if err := workspace.ValidateID(c.ID); err != nil {
		return nil, &UsageError{err}
	}
	b, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return nil, err
	}
	k, err := workspace.ParseExportedKey(b, c.ID)
	if err != nil {
		return nil, err
	}
	var pass []byte
	if k.NeedsPassphrase() {
		if pass, err = readPassphrase(g, "passphrase of the exported key: "); err != nil {
			return nil, err
		}
	}
	key, dk, err := k.Open(pass)
	if err != nil {
		return nil, err
	}
	opts.SourceKey, opts.DropCredentials = dk, dk == nil
	if dk == nil {
		fmt.Fprintln(g.Stderr, "warning: a bare snapshot key cannot open the snapshot's credentials; the new workspace gets none")
	}
	svc, err := g.Service()
	if err != nil {
		return nil, err
	}
	stores, err := c.stores(svc)
	if err != nil {
		return nil, err
	}
	return workspace.OpenSnapshotRepo(g.Context(), stores, c.ID, key, false, bsync.Options{Logger: g.Log.With("workspace", c.ID)})
}

// readPassphrase reads one passphrase: without echo from a terminal,
// otherwise stdin up to its first newline.
func readPassphrase(g *Globals, prompt string) ([]byte, error) {
	if f, ok := g.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(g.Stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(g.Stderr)
		return b, err
	}
	b, err := io.ReadAll(io.LimitReader(g.Stdin, 4096))
	if err != nil {
		return nil, err
	}
	b = workspace.TrimCredentialInput(b)
	if len(b) == 0 {
		return nil, errors.New("empty passphrase on stdin")
	}
	return b, nil
}

// CredsExportKeyCmd exports a workspace's key.
type CredsExportKeyCmd struct {
	ID    string `arg:"" help:"Workspace id."`
	Plain bool   `name:"plain" help:"Write the bare snapshot key (hex) instead of the data key wrapped under a passphrase; it reads snapshots but not their credentials."`
}

// Run exports.
func (c *CredsExportKeyCmd) Run(g *Globals) error {
	if err := workspace.ValidateID(c.ID); err != nil {
		return &UsageError{err}
	}
	svc, err := g.Service()
	if err != nil {
		return err
	}
	var pass []byte
	if !c.Plain {
		if pass, err = readNewPassphrase(g); err != nil {
			return err
		}
		if len(pass) == 0 {
			return &UsageError{errors.New("give a passphrase on stdin to wrap the key under, or --plain")}
		}
	}
	k, err := svc.ExportKey(g.Context(), c.ID, pass, credentials.KDFParams{})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "warning: this key reads every snapshot of %s, even after the workspace is deleted (which otherwise makes them unreadable). Keep it offline; anyone with it%s can read the workspace's files and state.\n",
		c.ID, map[bool]string{true: "", false: " and its passphrase"}[c.Plain])
	return printJSON(g, k)
}

// DiffCmd compares two snapshots of a workspace.
type DiffCmd struct {
	RepoFlags `embed:""`
	ID        string `arg:"" help:"Workspace id."`
	From      string `arg:"" help:"Older snapshot."`
	To        string `arg:"" help:"Newer snapshot."`
}

// Run diffs.
func (c *DiffCmd) Run(g *Globals) error {
	repo, err := c.openRepo(g, c.ID, false)
	if err != nil {
		return err
	}
	a, err := repo.FindSnapshot(g.Context(), c.From)
	if err != nil {
		return err
	}
	b, err := repo.FindSnapshot(g.Context(), c.To)
	if err != nil {
		return err
	}
	d := bsync.Diff(a, b)
	if c.JSON {
		return printJSON(g, d)
	}
	marks := map[bsync.ChangeKind]string{bsync.Added: "+", bsync.Removed: "-", bsync.Modified: "M", bsync.TypeChanged: "T", bsync.MetaChanged: "m"}
	for _, ch := range d.Changes {
		fmt.Fprintf(g.Stdout, "%s %s\n", marks[ch.Kind], ch.Path)
	}
	if d.StateChanged {
		fmt.Fprintln(g.Stdout, "M (state)")
	}
	if d.ConfigChanged {
		fmt.Fprintln(g.Stdout, "M (config)")
	}
	return nil
}

// VerifyCmd checks a workspace's repository.
type VerifyCmd struct {
	RepoFlags `embed:""`
	ID        string  `arg:"" help:"Workspace id."`
	ReadData  float64 `name:"read-data" default:"0.1" placeholder:"FRACTION" help:"Fraction of packs to download and authenticate (0 = structure only, 1 = all)."`
	Rebuild   bool    `name:"rebuild-index" help:"First rebuild the index from the pack headers (repairs a lost or damaged index)."`
}

// Run verifies.
func (c *VerifyCmd) Run(g *Globals) error {
	if c.ReadData < 0 || c.ReadData > 1 {
		return &UsageError{errors.New("--read-data must be between 0 and 1")}
	}
	repo, err := c.openRepo(g, c.ID, false)
	if err != nil {
		return err
	}
	if c.Rebuild {
		res, err := repo.RebuildIndex(g.Context())
		if err != nil {
			return err
		}
		if !c.JSON {
			fmt.Fprintf(g.Stdout, "index rebuilt: %d packs, %d blobs, %d unreadable packs\n", res.Packs, res.Blobs, len(res.BadPacks))
		}
	}
	rep, err := repo.Verify(g.Context(), bsync.VerifyOptions{ReadData: c.ReadData, Progress: c.progress(g)})
	if err != nil {
		return err
	}
	if c.JSON {
		if err := printJSON(g, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.Stdout, "%d snapshots, %d packs (%d read, %d blobs authenticated), %d unused packs\n",
			rep.Snapshots, rep.Packs, rep.PacksRead, rep.BlobsRead, rep.UnusedPacks)
		for _, p := range rep.Problems {
			fmt.Fprintln(g.Stdout, "problem:", p)
		}
	}
	if !rep.OK() {
		return fmt.Errorf("verify %s: %d problems", c.ID, len(rep.Problems))
	}
	return nil
}

// PruneCmd applies a retention policy and deletes unused data.
type PruneCmd struct {
	RepoFlags  `embed:""`
	ID         string `arg:"" help:"Workspace id."`
	KeepLast   int    `name:"keep-last" help:"Keep the N newest snapshots."`
	KeepHourly int    `name:"keep-hourly" help:"Keep the newest snapshot of each of the last N hours that have one."`
	KeepDaily  int    `name:"keep-daily" help:"Keep the newest snapshot of each of the last N days that have one."`
	KeepWeekly int    `name:"keep-weekly" help:"Keep the newest snapshot of each of the last N weeks that have one."`
	DryRun     bool   `name:"dry-run" help:"Show what would go; change nothing."`
}

// Run prunes.
func (c *PruneCmd) Run(g *Globals) error {
	keep := bsync.Retention{Last: c.KeepLast, Hourly: c.KeepHourly, Daily: c.KeepDaily, Weekly: c.KeepWeekly}
	if keep == (bsync.Retention{}) {
		return &UsageError{errors.New("give at least one --keep-* rule")}
	}
	repo, err := c.openRepo(g, c.ID, false)
	if err != nil {
		return err
	}
	res, err := repo.Prune(g.Context(), bsync.PruneOptions{Keep: keep, DryRun: c.DryRun, Progress: c.progress(g)})
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(g, res)
	}
	verb := "removed"
	if c.DryRun {
		verb = "would remove"
	}
	fmt.Fprintf(g.Stdout, "kept %d snapshots, %s %d (%s), %d packs deleted, %d repacked, %s freed\n", len(res.Kept), verb,
		len(res.Forgotten), strings.Join(res.Forgotten, " "), res.PacksDeleted, res.PacksRepacked, humanize.IBytes(uint64(res.BytesFreed)))
	return nil
}
