package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/bulkhead-dev/bulkhead/workspace"
)

// WorkspaceCmd groups the workspace commands.
type WorkspaceCmd struct {
	Create WorkspaceCreateCmd `cmd:"" help:"Create a workspace."`
	List   WorkspaceListCmd   `cmd:"" aliases:"ls" help:"List workspaces."`
	Show   WorkspaceShowCmd   `cmd:"" help:"Show one workspace and its config."`
	Config WorkspaceConfigCmd `cmd:"" help:"Show or change a workspace's config (KEY=VALUE by dotted path, or --from-file)."`
	Delete WorkspaceDeleteCmd `cmd:"" aliases:"rm" help:"Delete a workspace: its key is destroyed first, so its data and snapshots become unreadable."`
}

// WorkspaceCreateCmd creates a workspace.
type WorkspaceCreateCmd struct {
	ID       string   `arg:"" help:"Workspace id (${id_rule})."`
	FromFile string   `name:"config" type:"existingfile" placeholder:"FILE" help:"Start from this JSON config instead of the defaults."`
	Set      []string `name:"set" placeholder:"KEY=VALUE" help:"Set a config field, e.g. --set limits.memory=1GiB (repeatable)."`
	JSON     bool     `help:"Print the new workspace as JSON."`
}

// Run creates the workspace.
func (c *WorkspaceCreateCmd) Run(g *Globals) error {
	if err := workspace.ValidateID(c.ID); err != nil {
		return &UsageError{err}
	}
	cfg, err := buildConfig(c.FromFile, c.Set)
	if err != nil {
		return &UsageError{err}
	}
	svc, err := g.Backend()
	if err != nil {
		return err
	}
	w, err := svc.Create(g.Context(), c.ID, &cfg)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g, w)
	}
	fmt.Fprintf(g.Stdout, "created workspace %s (files in %s)\n", w.ID, g.filesDir(w.ID))
	return nil
}

func buildConfig(file string, sets []string) (workspace.Config, error) {
	cfg := workspace.DefaultConfig()
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		if cfg, err = workspace.ParseConfig(b); err != nil {
			return cfg, fmt.Errorf("%s: %w", file, err)
		}
	}
	for _, kv := range sets {
		if err := setOne(&cfg, kv); err != nil {
			return cfg, err
		}
	}
	return cfg, cfg.Validate()
}

func setOne(cfg *workspace.Config, kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE, e.g. limits.memory=1GiB", kv)
	}
	return cfg.Set(k, v)
}

// WorkspaceListCmd lists workspaces.
type WorkspaceListCmd struct {
	JSON bool `help:"Print as JSON."`
}

// Run lists.
func (c *WorkspaceListCmd) Run(g *Globals) error {
	svc, err := g.Backend()
	if err != nil {
		return err
	}
	all, err := svc.List(g.Context())
	if err != nil {
		return err
	}
	if c.JSON {
		if all == nil {
			all = []*workspace.Workspace{}
		}
		return writeJSON(g, all)
	}
	if len(all) == 0 {
		fmt.Fprintln(g.Stdout, "no workspaces; create one with: bulkhead workspace create <id>")
		return nil
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tMODEL\tPERSONA\tMEMORY\tCREATED")
	for _, w := range all {
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\n", w.ID, w.Config.Provider, w.Config.Model, w.Config.Persona, w.Config.Limits.Memory, w.CreatedAt.Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

// WorkspaceShowCmd shows one workspace.
type WorkspaceShowCmd struct {
	ID   string `arg:"" help:"Workspace id."`
	JSON bool   `help:"Print as JSON."`
}

// Run shows.
func (c *WorkspaceShowCmd) Run(g *Globals) error {
	if err := workspace.ValidateID(c.ID); err != nil {
		return &UsageError{err}
	}
	svc, err := g.Backend()
	if err != nil {
		return err
	}
	w, err := svc.Get(g.Context(), c.ID)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g, w)
	}
	fmt.Fprintf(g.Stdout, "id:        %s\ncreated:   %s\nupdated:   %s\nhost uid:  %d\nfiles:     %s\nconfig:\n", w.ID, w.CreatedAt.Format("2006-01-02 15:04:05Z"), w.UpdatedAt.Format("2006-01-02 15:04:05Z"), w.HostUID, g.filesDir(w.ID))
	b, _ := json.MarshalIndent(w.Config, "  ", "  ")
	fmt.Fprintf(g.Stdout, "  %s\n", b)
	return nil
}

// WorkspaceConfigCmd shows or changes a config.
type WorkspaceConfigCmd struct {
	ID       string   `arg:"" help:"Workspace id."`
	Set      []string `arg:"" optional:"" placeholder:"KEY=VALUE" help:"Fields to set by dotted path (limits.memory=1GiB, tools.deny='[\"bash\"]'). None: print the config."`
	FromFile string   `name:"from-file" type:"existingfile" placeholder:"FILE" help:"Replace the whole config with this JSON file (missing fields take defaults)."`
}

// Run shows or updates.
func (c *WorkspaceConfigCmd) Run(g *Globals) error {
	if err := workspace.ValidateID(c.ID); err != nil {
		return &UsageError{err}
	}
	var replacement *workspace.Config
	if c.FromFile != "" {
		cfg, err := buildConfig(c.FromFile, nil)
		if err != nil {
			return &UsageError{err}
		}
		replacement = &cfg
	}
	// Check the syntax of every KEY=VALUE before opening anything.
	probe := workspace.DefaultConfig()
	for _, kv := range c.Set {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return &UsageError{setOne(&probe, kv)}
		}
	}
	svc, err := g.Backend()
	if err != nil {
		return err
	}
	if replacement == nil && len(c.Set) == 0 {
		w, err := svc.Get(g.Context(), c.ID)
		if err != nil {
			return err
		}
		return writeJSON(g, w.Config)
	}
	w, err := svc.Configure(g.Context(), c.ID, replacement, c.Set)
	if err != nil {
		return err
	}
	return writeJSON(g, w.Config)
}

// WorkspaceDeleteCmd deletes a workspace.
type WorkspaceDeleteCmd struct {
	ID  string `arg:"" help:"Workspace id."`
	Yes bool   `short:"y" help:"Do not ask for confirmation."`
}

// Run deletes.
func (c *WorkspaceDeleteCmd) Run(g *Globals) error {
	if err := workspace.ValidateID(c.ID); err != nil {
		return &UsageError{err}
	}
	if !c.Yes {
		f, ok := g.Stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return &UsageError{fmt.Errorf("deleting %s destroys its key, files and snapshots for good; pass --yes to confirm", c.ID)}
		}
		fmt.Fprintf(g.Stderr, "Delete workspace %s? Its key, files and snapshots are destroyed for good. Type the id to confirm: ", c.ID)
		var answer string
		fmt.Fscanln(g.Stdin, &answer)
		if answer != c.ID {
			return fmt.Errorf("not confirmed; nothing deleted")
		}
	}
	svc, err := g.Backend()
	if err != nil {
		return err
	}
	if err := svc.Delete(g.Context(), c.ID); err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "deleted workspace %s\n", c.ID)
	return nil
}

func writeJSON(g *Globals, v any) error {
	enc := json.NewEncoder(g.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
