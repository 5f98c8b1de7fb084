package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/bulkhead-dev/bulkhead/credentials"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// CredsCmd groups the credential commands.
type CredsCmd struct {
	Set              CredsSetCmd       `cmd:"" help:"Seal and store a credential; the value is read from stdin or --from-file, never from the command line."`
	List             CredsListCmd      `cmd:"" aliases:"ls" help:"List credential names and dates (never values)."`
	Rm               CredsRmCmd        `cmd:"" aliases:"delete" help:"Delete a credential."`
	RotatePassphrase CredsRotateCmd    `cmd:"" name:"rotate-passphrase" help:"Rewrap every workspace's data key under a new passphrase (read from BULKHEAD_NEW_CREDENTIAL_KEY or stdin)."`
	ExportKey        CredsExportKeyCmd `cmd:"" name:"export-key" help:"Write a workspace's key to stdout (wrapped under a passphrase read from stdin, or --plain) so its snapshots stay readable after it is deleted."`
}

// CredsSetCmd stores a credential.
type CredsSetCmd struct {
	ID       string `arg:"" help:"Workspace id."`
	Name     string `arg:"" help:"Credential name (${cred_rule})."`
	FromFile string `name:"from-file" type:"existingfile" placeholder:"FILE" help:"Read the value from this file instead of stdin."`
	Keep     bool   `name:"keep-newline" help:"Keep a trailing newline in the value (by default one is removed)."`
}

// Run stores.
func (c *CredsSetCmd) Run(g *Globals) error {
	if err := workspace.ValidateID(c.ID); err != nil {
		return &UsageError{err}
	}
	if err := workspace.ValidateCredentialName(c.Name); err != nil {
		return &UsageError{err}
	}
	value, err := readSecret(g, c.FromFile, fmt.Sprintf("value for %s/%s: ", c.ID, c.Name))
	if err != nil {
		return err
	}
	defer credentials.Secret(value).Wipe()
	if !c.Keep {
		value = workspace.TrimCredentialInput(value)
	}
	if err := workspace.ValidateCredentialValue(value); err != nil {
		return &UsageError{err}
	}
	svc, err := g.Backend()
	if err != nil {
		return err
	}
	if err := svc.SetCredential(g.Context(), c.ID, c.Name, value); err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "stored credential %s for %s\n", c.Name, c.ID)
	return nil
}

// readSecret reads from file, or from stdin (without echo on a terminal).
func readSecret(g *Globals, file, prompt string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read value: %w", err)
		}
		return b, nil
	}
	if f, ok := g.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(g.Stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(g.Stderr)
		return b, err
	}
	b, err := io.ReadAll(io.LimitReader(g.Stdin, workspace.MaxCredentialSize+2))
	if err != nil {
		return nil, fmt.Errorf("read value from stdin: %w", err)
	}
	return b, nil
}

// CredsListCmd lists names.
type CredsListCmd struct {
	ID   string `arg:"" help:"Workspace id."`
	JSON bool   `help:"Print as JSON."`
}

// Run lists.
func (c *CredsListCmd) Run(g *Globals) error {
	if err := workspace.ValidateID(c.ID); err != nil {
		return &UsageError{err}
	}
	svc, err := g.Backend()
	if err != nil {
		return err
	}
	list, err := svc.ListCredentials(g.Context(), c.ID)
	if err != nil {
		return err
	}
	if c.JSON {
		if list == nil {
			list = []workspace.CredentialInfo{}
		}
		return writeJSON(g, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(g.Stdout, "%s has no credentials\n", c.ID)
		return nil
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCREATED\tUPDATED")
	for _, ci := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", ci.Name, ci.CreatedAt.Format("2006-01-02 15:04"), ci.UpdatedAt.Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

// CredsRmCmd deletes a credential.
type CredsRmCmd struct {
	ID   string `arg:"" help:"Workspace id."`
	Name string `arg:"" help:"Credential name."`
}

// Run deletes.
func (c *CredsRmCmd) Run(g *Globals) error {
	if err := workspace.ValidateID(c.ID); err != nil {
		return &UsageError{err}
	}
	if err := workspace.ValidateCredentialName(c.Name); err != nil {
		return &UsageError{err}
	}
	svc, err := g.Backend()
	if err != nil {
		return err
	}
	if err := svc.DeleteCredential(g.Context(), c.ID, c.Name); err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "deleted credential %s of %s\n", c.Name, c.ID)
	return nil
}

// CredsRotateCmd rewraps data keys under a new passphrase.
type CredsRotateCmd struct{}

// NewPassphraseEnv holds the new passphrase for rotate-passphrase.
const NewPassphraseEnv = "BULKHEAD_NEW_CREDENTIAL_KEY"

// Run rotates.
func (c *CredsRotateCmd) Run(g *Globals) error {
	newPass := []byte(os.Getenv(NewPassphraseEnv))
	if len(newPass) == 0 {
		var err error
		if newPass, err = readNewPassphrase(g); err != nil {
			return err
		}
	}
	defer credentials.Secret(newPass).Wipe()
	if len(newPass) == 0 {
		return &UsageError{fmt.Errorf("empty new passphrase: set %s or pipe it on stdin", NewPassphraseEnv)}
	}
	svc, err := g.Backend()
	if err != nil {
		return err
	}
	n, err := svc.RotatePassphrase(g.Context(), newPass)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "rewrapped %d workspace keys; set %s to the new passphrase from now on\n", n, credentials.PassphraseEnv)
	return nil
}

func readNewPassphrase(g *Globals) ([]byte, error) {
	f, ok := g.Stdin.(*os.File)
	if ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(g.Stderr, "new passphrase: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprint(g.Stderr, "\nagain: ")
		if err != nil {
			return nil, err
		}
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(g.Stderr)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(a, b) {
			return nil, errors.New("passphrases differ; nothing changed")
		}
		return a, nil
	}
	b, err := io.ReadAll(io.LimitReader(g.Stdin, 4096))
	if err != nil {
		return nil, err
	}
	return workspace.TrimCredentialInput(b), nil
}
