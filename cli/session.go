package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/agent"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// SessionCmd groups the session commands.
type SessionCmd struct {
	List SessionListCmd `cmd:"" aliases:"ls" help:"List a workspace's sessions, most recent first."`
	Show SessionShowCmd `cmd:"" help:"Show a session's transcript."`
	Rm   SessionRmCmd   `cmd:"" aliases:"delete" help:"Delete a session (its runs and journals stay)."`
}

// SessionListCmd lists sessions.
type SessionListCmd struct {
	Workspace string `arg:"" help:"Workspace id."`
	JSON      bool   `help:"Print as JSON."`
}

// Run lists.
func (c *SessionListCmd) Run(g *Globals) error {
	api, err := g.agentBackend(nil)
	if err != nil {
		return err
	}
	list, err := api.ListSessions(g.Context(), c.Workspace)
	if err != nil {
		return err
	}
	if c.JSON {
		return jsonOut(g.Stdout, list)
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tMESSAGES\tRUNS\tTOKENS\tUPDATED")
	for _, s := range list {
		fmt.Fprintf(tw, "%s:%s\t%d\t%d\t%d\t%s\n", s.Kind, s.ID, s.Messages, len(s.Runs), s.Usage.Total(), s.UpdatedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func parseRef(s string) (workspace.SessionRef, error) {
	ref, err := workspace.ParseSessionRef(s)
	if err != nil {
		return ref, &UsageError{err}
	}
	return ref, nil
}

// SessionShowCmd prints a transcript.
type SessionShowCmd struct {
	Workspace string `arg:"" help:"Workspace id."`
	Session   string `arg:"" help:"Session id or kind:id."`
	JSON      bool   `help:"Print as JSON."`
}

// Run shows.
func (c *SessionShowCmd) Run(g *Globals) error {
	ref, err := parseRef(c.Session)
	if err != nil {
		return err
	}
	api, err := g.agentBackend(nil)
	if err != nil {
		return err
	}
	s, err := api.GetSession(g.Context(), c.Workspace, ref)
	if err != nil {
		return err
	}
	if c.JSON {
		return jsonOut(g.Stdout, s)
	}
	fmt.Fprintf(g.Stdout, "%s  %d messages, %d runs, %d tokens\n", s.Key, s.Messages, len(s.Runs), s.Usage.Total())
	for _, m := range s.Transcript {
		for _, p := range m.Parts {
			switch p.Type {
			case agent.PartText:
				fmt.Fprintf(g.Stdout, "\n%s: %s\n", m.Role, p.Text)
			case agent.PartToolUse:
				fmt.Fprintf(g.Stdout, "\n%s → %s %s\n", m.Role, p.Name, oneLine(string(p.Input), 400))
			case agent.PartToolResult:
				mark := "←"
				if p.IsError {
					mark = "← error:"
				}
				fmt.Fprintf(g.Stdout, "  %s %s\n", mark, oneLine(p.Text, 400))
			}
		}
	}
	return nil
}

// SessionRmCmd deletes a session.
type SessionRmCmd struct {
	Workspace string `arg:"" help:"Workspace id."`
	Session   string `arg:"" help:"Session id or kind:id."`
}

// Run deletes.
func (c *SessionRmCmd) Run(g *Globals) error {
	ref, err := parseRef(c.Session)
	if err != nil {
		return err
	}
	api, err := g.agentBackend(nil)
	if err != nil {
		return err
	}
	err = api.DeleteSession(g.Context(), c.Workspace, ref)
	if errors.Is(err, workspace.ErrSessionBusy) {
		return fmt.Errorf("%w: cancel its run first", err)
	}
	return err
}

// jsonOut prints v as indented JSON.
func jsonOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
