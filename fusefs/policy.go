package fusefs

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// DefaultReadOnly is the read-only rule every Policy carries: the workspace's
// own configuration directory is visible to the sandbox but not writable.
const DefaultReadOnly = ".bulkhead/**"

// PolicyConfig is the configuration a Policy is compiled from.
//
// Patterns are slash-separated and anchored at the root of the tree. Within a
// segment, *, ? and [...] work as in path.Match; a segment that is exactly **
// matches zero or more segments, so "**/*.pem" matches a .pem file at any
// depth and "secrets/**" matches secrets and everything below it. A rule that
// matches a directory applies to everything below it as well.
type PolicyConfig struct {
	// Deny lists paths that are invisible (absent from lookups and readdir)
	// and cannot be created.
	Deny []string
	// ReadOnly lists paths that can be read but not created, written,
	// renamed, removed or have their attributes changed. DefaultReadOnly is
	// always added.
	ReadOnly []string
	// AllowSpecialFiles allows creating device nodes, fifos and sockets.
	AllowSpecialFiles bool
}

// Policy decides which paths of a tree may be seen and changed. It is
// immutable once built and safe for concurrent use.
type Policy struct {
	deny         []pattern
	readOnly     []pattern
	allowSpecial bool
}

type pattern struct {
	raw  string
	segs []string
}

// NewPolicy compiles cfg. It returns an error wrapping ErrBadPattern if a
// pattern is malformed.
func NewPolicy(cfg PolicyConfig) (*Policy, error) {
	p := &Policy{allowSpecial: cfg.AllowSpecialFiles}
	var err error
	if p.deny, err = compilePatterns(cfg.Deny); err != nil {
		return nil, fmt.Errorf("compile deny rules: %w", err)
	}
	ro := cfg.ReadOnly
	if !slices.Contains(ro, DefaultReadOnly) {
		ro = append(slices.Clone(ro), DefaultReadOnly)
	}
	if p.readOnly, err = compilePatterns(ro); err != nil {
		return nil, fmt.Errorf("compile read-only rules: %w", err)
	}
	return p, nil
}

// DefaultPolicy returns the policy with no deny rules and only
// DefaultReadOnly.
func DefaultPolicy() *Policy {
	p, err := NewPolicy(PolicyConfig{})
	if err != nil {
		panic(err) // DefaultReadOnly is a constant that compiles
	}
	return p
}

func compilePatterns(raw []string) ([]pattern, error) {
	out := make([]pattern, 0, len(raw))
	for _, r := range raw {
		s := strings.Trim(r, "/")
		if s == "" {
			return nil, fmt.Errorf("%w: %q matches the root", ErrBadPattern, r)
		}
		segs := strings.Split(s, "/")
		for _, seg := range segs {
			if seg == "" || seg == "." || seg == ".." {
				return nil, fmt.Errorf("%w: %q has an empty, . or .. segment", ErrBadPattern, r)
			}
			if _, err := path.Match(seg, ""); err != nil {
				return nil, fmt.Errorf("%w: %q: %v", ErrBadPattern, r, err)
			}
		}
		out = append(out, pattern{raw: r, segs: segs})
	}
	return out, nil
}

// splitRel splits a relative path into its segments. It refuses absolute
// paths and paths with ".." so that a caller's mistake cannot widen what a
// rule lets through.
func splitRel(rel string) ([]string, error) {
	if rel == "" || rel == "." {
		return nil, nil
	}
	if strings.HasPrefix(rel, "/") {
		return nil, fmt.Errorf("%w: %q is absolute", ErrOutsideRoot, rel)
	}
	clean := path.Clean(rel)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, fmt.Errorf("%w: %q", ErrOutsideRoot, rel)
	}
	if clean == "." {
		return nil, nil
	}
	return strings.Split(clean, "/"), nil
}

// matchSegs reports whether the pattern segments match the path segments
// exactly.
func matchSegs(pat, p []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			for i := 0; i <= len(p); i++ {
				if matchSegs(rest, p[i:]) {
					return true
				}
			}
			return false
		}
		if len(p) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], p[0]); !ok {
			return false
		}
		pat, p = pat[1:], p[1:]
	}
	return len(p) == 0
}

// matchesTree reports whether any pattern matches segs or one of its
// ancestors.
func matchesTree(pats []pattern, segs []string) bool {
	for _, pt := range pats {
		for i := 1; i <= len(segs); i++ {
			if matchSegs(pt.segs, segs[:i]) {
				return true
			}
		}
	}
	return false
}

// residuals returns, for every way the patterns can consume dir as a prefix,
// the rest of the pattern that would then have to match a path below dir. Two
// directories with equal residual sets have the same rules below them.
func residuals(pats []pattern, dir []string) []string {
	set := map[string]bool{}
	var walk func(pat, p []string)
	walk = func(pat, p []string) {
		if len(p) == 0 {
			if len(pat) > 0 {
				set[strings.Join(pat, "/")] = true
			}
			return
		}
		if len(pat) == 0 {
			return
		}
		if pat[0] == "**" {
			walk(pat[1:], p) // ** matches nothing more
			walk(pat, p[1:]) // ** eats one segment
			return
		}
		if ok, _ := path.Match(pat[0], p[0]); ok {
			walk(pat[1:], p[1:])
		}
	}
	for _, pt := range pats {
		walk(pt.segs, dir)
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Hidden reports whether rel (or one of its ancestors) is matched by a deny
// rule. A path that leaves the root counts as hidden.
func (p *Policy) Hidden(rel string) bool {
	segs, err := splitRel(rel)
	if err != nil {
		return true
	}
	return matchesTree(p.deny, segs)
}

// CheckRead returns nil if rel may be looked up and read, else an error
// wrapping ErrDenied or ErrOutsideRoot.
func (p *Policy) CheckRead(rel string) error {
	segs, err := splitRel(rel)
	if err != nil {
		return err
	}
	if matchesTree(p.deny, segs) {
		return fmt.Errorf("%w: %s", ErrDenied, rel)
	}
	return nil
}

// CheckWrite returns nil if rel may be created, written, removed or have its
// attributes changed, else an error wrapping ErrDenied, ErrReadOnly or
// ErrOutsideRoot. The root itself can be written (entries created in it) but
// its rules are those of its entries.
func (p *Policy) CheckWrite(rel string) error {
	segs, err := splitRel(rel)
	if err != nil {
		return err
	}
	if matchesTree(p.deny, segs) {
		return fmt.Errorf("%w: %s", ErrDenied, rel)
	}
	if matchesTree(p.readOnly, segs) {
		return fmt.Errorf("%w: %s", ErrReadOnly, rel)
	}
	return nil
}

// CheckMode returns nil if a file of this mode may exist in the tree: no
// set-user-ID, set-group-ID or sticky bit, and no device node, fifo or socket
// unless the policy allows special files.
func (p *Policy) CheckMode(mode fs.FileMode) error {
	if mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		return fmt.Errorf("%w: mode %v", ErrModeNotAllowed, mode)
	}
	if mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0 && !p.allowSpecial {
		return fmt.Errorf("%w: mode %v", ErrSpecialFile, mode)
	}
	if mode&fs.ModeIrregular != 0 {
		return fmt.Errorf("%w: mode %v", ErrSpecialFile, mode)
	}
	return nil
}

// CheckRename returns nil if from may be renamed to to. Both ends must be
// writable. When a directory moves, the rules below its old and new names
// must be the same, so that renaming a parent cannot move files out from
// under a deny or read-only rule (or under one).
func (p *Policy) CheckRename(from, to string, isDir bool) error {
	if err := p.CheckWrite(from); err != nil {
		return err
	}
	if err := p.CheckWrite(to); err != nil {
		return err
	}
	if !isDir {
		return nil
	}
	fromSegs, _ := splitRel(from)
	toSegs, _ := splitRel(to)
	if !slices.Equal(residuals(p.deny, fromSegs), residuals(p.deny, toSegs)) {
		return fmt.Errorf("%w: moving %s to %s changes which paths below it are denied", ErrDenied, from, to)
	}
	if !slices.Equal(residuals(p.readOnly, fromSegs), residuals(p.readOnly, toSegs)) {
		return fmt.Errorf("%w: moving %s to %s changes which paths below it are read-only", ErrReadOnly, from, to)
	}
	return nil
}

// String lists the rules, for logs.
func (p *Policy) String() string {
	var b strings.Builder
	b.WriteString("deny=[")
	for i, d := range p.deny {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(d.raw)
	}
	b.WriteString("] read-only=[")
	for i, r := range p.readOnly {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(r.raw)
	}
	fmt.Fprintf(&b, "] special-files=%v", p.allowSpecial)
	return b.String()
}
