package board

import (
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/agent"
	"github.com/bulkhead-dev/bulkhead/workspace"
)

// PersonaFiles are the bootstrap files of a persona, in prompt order.
var PersonaFiles = []string{"SOUL.md", "IDENTITY.md", "AGENTS.md", "TOOLS.md", "USER.md", "HEARTBEAT.md", "BOOTSTRAP.md", "MEMORY.md"}

// MaxPersonaFile is the largest bootstrap file accepted.
const MaxPersonaFile = 64 << 10

//go:embed personas
var builtinFS embed.FS

// Builtins are the personas every node has.
var Builtins = []string{"developer", "reviewer", "project-manager"}

// Persona is a named set of bootstrap files.
type Persona struct {
	Name    string            `json:"name"`
	Builtin bool              `json:"builtin"`
	Files   map[string]string `json:"files"`
}

func personaKey(name string) []byte { return []byte("persona/" + name) }

// Persona returns the persona called name.
func (b *Board) Persona(name string) (*Persona, error) {
	if err := workspace.ValidateID(name); err != nil {
		return nil, fmt.Errorf("%w: persona %q", ErrPersonaNotFound, name)
	}
	if slices.Contains(Builtins, name) {
		p := &Persona{Name: name, Builtin: true, Files: map[string]string{}}
		for _, f := range PersonaFiles {
			c, err := fs.ReadFile(builtinFS, "personas/"+name+"/"+f)
			if err != nil {
				return nil, fmt.Errorf("read built-in persona %s: %w", name, err)
			}
			p.Files[f] = string(c)
		}
		return p, nil
	}
	var p Persona
	var found bool
	err := b.db.View(func(txn *badger.Txn) error {
		var err error
		found, err = getJSON(txn, personaKey(name), &p)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %q (known: %s)", ErrPersonaNotFound, name, strings.Join(b.personaNames(), ", "))
	}
	return &p, nil
}

func (b *Board) personaNames() []string {
	ps, err := b.Personas()
	if err != nil {
		return Builtins
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// Personas lists the built-in personas and those added, by name.
func (b *Board) Personas() ([]*Persona, error) {
	var out []*Persona
	for _, n := range Builtins {
		p, err := b.Persona(n)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	err := b.db.View(func(txn *badger.Txn) error {
		return scan(txn, []byte("persona/"), func(p *Persona) error { out = append(out, p); return nil })
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// AddPersona stores a persona. files maps bootstrap file names to their
// text; SOUL.md is required, names outside PersonaFiles are refused.
func (b *Board) AddPersona(name string, files map[string]string) (*Persona, error) {
	if err := workspace.ValidateID(name); err != nil {
		return nil, fmt.Errorf("%w: persona name %q must match %s", ErrInvalid, name, workspace.IDRule)
	}
	if slices.Contains(Builtins, name) {
		return nil, fmt.Errorf("%w: %q is built in", ErrPersonaExists, name)
	}
	if strings.TrimSpace(files["SOUL.md"]) == "" {
		return nil, fmt.Errorf("%w: a persona needs a non-empty SOUL.md", ErrInvalid)
	}
	for f, c := range files {
		if !slices.Contains(PersonaFiles, f) {
			return nil, fmt.Errorf("%w: %q is not a bootstrap file (want one of %s)", ErrInvalid, f, strings.Join(PersonaFiles, ", "))
		}
		if len(c) > MaxPersonaFile {
			return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, f, MaxPersonaFile)
		}
	}
	p := &Persona{Name: name, Files: files}
	err := b.update(func(txn *badger.Txn) error {
		if found, err := getJSON(txn, personaKey(name), &Persona{}); err != nil {
			return err
		} else if found {
			return fmt.Errorf("%w: %q", ErrPersonaExists, name)
		}
		return putJSON(txn, personaKey(name), p)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// ReadPersonaDir reads the bootstrap files present in dir.
func ReadPersonaDir(dir string) (map[string]string, error) {
	files := map[string]string{}
	for _, f := range PersonaFiles {
		c, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read persona file: %w", err)
		}
		files[f] = string(c)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: %s has none of %s", ErrInvalid, dir, strings.Join(PersonaFiles, ", "))
	}
	return files, nil
}

// bootstrap resolves the files a run of ticket t starts from: the ticket's
// assignee persona (or the project's), with files in the project's
// .bulkhead/ directory taking precedence.
func (b *Board) bootstrap(p *Project, t *Ticket) ([]agent.BootstrapFile, string, error) {
	name := t.Assignee
	if name == "" {
		name = p.Persona
	}
	per, err := b.Persona(name)
	if err != nil {
		return nil, "", err
	}
	var out []agent.BootstrapFile
	for _, f := range PersonaFiles {
		content := per.Files[f]
		if c, ok := readOverride(filepath.Join(b.ws.FilesDir(p.ID), ".bulkhead"), f); ok {
			content = c
		}
		if strings.TrimSpace(content) != "" {
			out = append(out, agent.BootstrapFile{Name: f, Content: strings.ToValidUTF8(content, "\uFFFD")})
		}
	}
	return out, name, nil
}

// readOverride reads dir/name if both are what they claim to be: the
// directory and the file are not symlinks, the file is regular and not too
// large. The tree belongs to the tenant, so the host never follows a link
// out of it.
func readOverride(dir, name string) (string, bool) {
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return "", false
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > MaxPersonaFile {
		return "", false
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return "", false
	}
	return string(b), true
}
