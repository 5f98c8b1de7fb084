package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/workspace"
)

// SkillCmd groups the skill registry and per-workspace enablement. Skills
// are node configuration: these commands open the state dir in this process.
type SkillCmd struct {
	Add     SkillAddCmd     `cmd:"" help:"Register a skill directory (SKILL.md + an executable); it is copied into the state dir."`
	List    SkillListCmd    `cmd:"" aliases:"ls" help:"List registered skills (with a workspace: whether it enabled each)."`
	Rm      SkillRmCmd      `cmd:"" aliases:"delete" help:"Unregister a skill."`
	Enable  SkillEnableCmd  `cmd:"" help:"Let a workspace's agent use a skill."`
	Disable SkillDisableCmd `cmd:"" help:"Withdraw a skill from a workspace."`
}

func skillUsage(err error) error {
	if errors.Is(err, workspace.ErrInvalidSkill) || errors.Is(err, workspace.ErrInvalidID) {
		return &UsageError{err}
	}
	return err
}

// SkillAddCmd registers a skill.
type SkillAddCmd struct {
	Dir string `arg:"" type:"existingdir" help:"Skill directory."`
}

// Run adds.
func (c *SkillAddCmd) Run(g *Globals) error {
	svc, err := g.Service()
	if err != nil {
		return err
	}
	sk, err := svc.AddSkill(g.Context(), c.Dir)
	if err != nil {
		return skillUsage(err)
	}
	fmt.Fprintf(g.Stdout, "added skill %s (exec %s, credentials [%s], egress [%s], timeout %s)\n",
		sk.Name, sk.Exec, strings.Join(sk.Credentials, ", "), strings.Join(sk.Egress, ", "), time.Duration(sk.Timeout))
	if sk.Network {
		fmt.Fprintf(g.Stderr, "note: the skill reaches %s through the egress proxy, with its credentials in its environment; names resolving to private addresses still need the node's --egress-allow\n", strings.Join(sk.Egress, ", "))
	}
	return nil
}

// SkillListCmd lists skills.
type SkillListCmd struct {
	Workspace string `arg:"" optional:"" help:"Workspace id: show enablement and missing credentials."`
	JSON      bool   `help:"Print as JSON."`
}

// Run lists.
func (c *SkillListCmd) Run(g *Globals) error {
	svc, err := g.Service()
	if err != nil {
		return err
	}
	if c.Workspace == "" {
		list, err := svc.ListSkills(g.Context())
		if err != nil {
			return err
		}
		if c.JSON {
			return jsonOut(g.Stdout, list)
		}
		tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SKILL\tCREDENTIALS\tEGRESS\tDESCRIPTION")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, strings.Join(s.Credentials, ","), strings.Join(s.Egress, ","), oneLine(s.Description, 60))
		}
		return tw.Flush()
	}
	list, err := svc.WorkspaceSkills(g.Context(), c.Workspace)
	if err != nil {
		return err
	}
	if c.JSON {
		return jsonOut(g.Stdout, list)
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SKILL\tENABLED\tMISSING CREDENTIALS\tDESCRIPTION")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", s.Name, s.Enabled, strings.Join(s.MissingCredentials, ","), oneLine(s.Description, 60))
	}
	return tw.Flush()
}

// SkillRmCmd unregisters a skill.
type SkillRmCmd struct {
	Name string `arg:"" help:"Skill name."`
}

// Run removes.
func (c *SkillRmCmd) Run(g *Globals) error {
	svc, err := g.Service()
	if err != nil {
		return err
	}
	return svc.RemoveSkill(g.Context(), c.Name)
}

// SkillEnableCmd enables a skill for a workspace.
type SkillEnableCmd struct {
	Workspace string `arg:"" help:"Workspace id."`
	Name      string `arg:"" help:"Skill name."`
}

// Run enables.
func (c *SkillEnableCmd) Run(g *Globals) error {
	svc, err := g.Service()
	if err != nil {
		return err
	}
	if err := svc.EnableSkill(g.Context(), c.Workspace, c.Name); err != nil {
		return skillUsage(err)
	}
	list, err := svc.WorkspaceSkills(g.Context(), c.Workspace)
	if err != nil {
		return err
	}
	for _, s := range list {
		if s.Name == c.Name && len(s.MissingCredentials) > 0 {
			fmt.Fprintf(g.Stderr, "warning: %s needs credentials the workspace lacks: %s (bulkhead creds set %s NAME)\n",
				c.Name, strings.Join(s.MissingCredentials, ", "), c.Workspace)
		}
	}
	return nil
}

// SkillDisableCmd disables a skill for a workspace.
type SkillDisableCmd struct {
	Workspace string `arg:"" help:"Workspace id."`
	Name      string `arg:"" help:"Skill name."`
}

// Run disables.
func (c *SkillDisableCmd) Run(g *Globals) error {
	svc, err := g.Service()
	if err != nil {
		return err
	}
	return svc.DisableSkill(g.Context(), c.Workspace, c.Name)
}
