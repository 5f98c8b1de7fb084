package workspace

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/agent"
	"github.com/bulkhead-dev/bulkhead/kv"
	"github.com/bulkhead-dev/bulkhead/netguard"
	"github.com/bulkhead-dev/bulkhead/sandbox"
)

// Skill defaults and caps.
const (
	DefaultSkillTimeout   = 30 * time.Second
	DefaultSkillMaxOutput = 10 << 20
	maxSkillDirBytes      = 64 << 20
	maxSkillFiles         = 1000
	skillStderrKeep       = 4 << 10
)

const prefixSkill = "skill/" // control DB: registry; workspace DB: enablement

// Skill is a registered skill: a directory with SKILL.md and an executable,
// copied into the node's state dir when it is added.
type Skill struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Exec is the executable's path inside the skill directory.
	Exec string `json:"exec"`
	// Credentials are the workspace credential names the skill receives as
	// environment variables (upper-cased, '.' and '-' as '_').
	Credentials []string `json:"credentials"`
	// Network is true when the skill declares it needs egress; Egress then
	// lists where to (netguard egress rules: "name[:port]",
	// "*.suffix[:port]"). The skill's sandbox reaches exactly those names
	// through a host proxy and the node's address guard. The operator
	// vets the list when adding the skill.
	Network   bool            `json:"network"`
	Egress    []string        `json:"egress,omitempty"`
	Timeout   Duration        `json:"timeout"`
	MaxOutput int64           `json:"max_output"`
	Schema    json.RawMessage `json:"schema,omitempty"`
	AddedAt   time.Time       `json:"added_at"`
}

func (s *Service) skillsDir() string        { return filepath.Join(s.dir, "skills") }
func (s *Service) skillDir(n string) string { return filepath.Join(s.skillsDir(), n) }

// ParseSkillMD reads SKILL.md: a front matter block between "---" lines of
// "key: value" pairs (name, description, exec, credentials as a
// comma-separated or [bracketed] list, network, timeout, max_output), then
// free text. A missing description is the first line of the text.
func ParseSkillMD(data []byte) (*Skill, error) {
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	rest, ok := strings.CutPrefix(text, "---\n")
	if !ok {
		return nil, fmt.Errorf("%w: SKILL.md must start with a --- front matter block", ErrInvalidSkill)
	}
	front, body, ok := strings.Cut(rest, "\n---")
	if !ok {
		return nil, fmt.Errorf("%w: SKILL.md front matter is not closed with ---", ErrInvalidSkill)
	}
	sk := &Skill{Exec: "run", Timeout: Duration(DefaultSkillTimeout), MaxOutput: DefaultSkillMaxOutput}
	for i, line := range strings.Split(front, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: SKILL.md line %d: want key: value", ErrInvalidSkill, i+2)
		}
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"'`)
		switch k {
		case "name":
			sk.Name = v
		case "description":
			sk.Description = v
		case "exec":
			sk.Exec = v
		case "credentials":
			sk.Credentials = append(sk.Credentials, frontList(v)...)
		case "egress":
			sk.Egress = append(sk.Egress, frontList(v)...)
		case "network":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("%w: network: %q is not true or false", ErrInvalidSkill, v)
			}
			sk.Network = b
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second || d > 10*time.Minute {
				return nil, fmt.Errorf("%w: timeout %q: want a duration from 1s to 10m", ErrInvalidSkill, v)
			}
			sk.Timeout = Duration(d)
		case "max_output":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1024 || n > 64<<20 {
				return nil, fmt.Errorf("%w: max_output %q: want bytes from 1024 to 64 MiB", ErrInvalidSkill, v)
			}
			sk.MaxOutput = n
		default:
			return nil, fmt.Errorf("%w: SKILL.md: unknown key %q", ErrInvalidSkill, k)
		}
	}
	if sk.Description == "" {
		for _, l := range strings.Split(strings.TrimPrefix(body, "-"), "\n") {
			if l = strings.TrimSpace(strings.TrimLeft(l, "#")); l != "" && l != "-" {
				sk.Description = l
				break
			}
		}
	}
	if len(sk.Egress) > 0 {
		sk.Network = true
	}
	return sk, sk.validate()
}

// frontList splits a front matter list: comma-separated, optionally in
// [brackets], items optionally quoted.
func frontList(v string) []string {
	var out []string
	for _, c := range strings.Split(strings.Trim(v, "[]"), ",") {
		if c = strings.Trim(strings.TrimSpace(c), `"'`); c != "" {
			out = append(out, c)
		}
	}
	return out
}

func (sk *Skill) validate() error {
	if err := ValidateID(sk.Name); err != nil {
		return fmt.Errorf("%w: name: %v", ErrInvalidSkill, err)
	}
	if sk.Description == "" {
		return fmt.Errorf("%w: no description", ErrInvalidSkill)
	}
	if len(sk.Description) > 1024 {
		sk.Description = agent.TruncateMiddle(sk.Description, 1024, "description")
	}
	clean := filepath.Clean(sk.Exec)
	if sk.Exec == "" || filepath.IsAbs(sk.Exec) || clean == "." || strings.HasPrefix(clean, "..") {
		return fmt.Errorf("%w: exec %q must be a path inside the skill directory", ErrInvalidSkill, sk.Exec)
	}
	sk.Exec = clean
	if sk.Network && len(sk.Egress) == 0 {
		return fmt.Errorf("%w: network: true needs an egress: list of the hosts the skill reaches (e.g. egress: api.github.com)", ErrInvalidSkill)
	}
	if len(sk.Egress) > MaxEgressEntries {
		return fmt.Errorf("%w: egress: %d entries, at most %d", ErrInvalidSkill, len(sk.Egress), MaxEgressEntries)
	}
	if _, err := netguard.ParseEgressRules(sk.Egress); err != nil {
		return fmt.Errorf("%w: egress: %v", ErrInvalidSkill, err)
	}
	for _, c := range sk.Credentials {
		if err := ValidateCredentialName(c); err != nil {
			return fmt.Errorf("%w: credentials: %v", ErrInvalidSkill, err)
		}
		if isProviderKeyName(c) {
			return fmt.Errorf("%w: credential %q is a model provider key; those stay with the host", ErrInvalidSkill, c)
		}
	}
	return nil
}

// AddSkill registers the skill in directory src: SKILL.md is parsed, the
// directory (regular files and directories only) is copied into the node's
// state dir, and the copy is what runs. A skill's directory is read-only to
// it.
func (s *Service) AddSkill(ctx context.Context, src string) (*Skill, error) {
	md, err := os.ReadFile(filepath.Join(src, "SKILL.md"))
	if err != nil {
		return nil, fmt.Errorf("%w: read SKILL.md: %v", ErrInvalidSkill, err)
	}
	sk, err := ParseSkillMD(md)
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(src, "schema.json")); err == nil {
		var obj map[string]any
		if json.Unmarshal(b, &obj) != nil || obj["type"] != "object" {
			return nil, fmt.Errorf("%w: schema.json must be a JSON schema of type object", ErrInvalidSkill)
		}
		sk.Schema = b
	}
	fi, err := os.Lstat(filepath.Join(src, sk.Exec))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("%w: exec %q is not an executable regular file", ErrInvalidSkill, sk.Exec)
	}
	sk.AddedAt = time.Now().UTC()
	if err := os.MkdirAll(s.skillsDir(), 0o711); err != nil {
		return nil, fmt.Errorf("create skills dir: %w", err)
	}
	dst := s.skillDir(sk.Name)
	tmp := dst + ".tmp-" + randHex(4)
	if err := copySkillDir(src, tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	err = kv.UpdateSync(s.control, func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(prefixSkill + sk.Name)); err == nil {
			return fmt.Errorf("%w: %s", ErrSkillExists, sk.Name)
		}
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("install skill: %w", err)
		}
		b, _ := json.Marshal(sk)
		return txn.Set([]byte(prefixSkill+sk.Name), b)
	})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	s.log.Info("skill added", "skill", sk.Name, "credentials", sk.Credentials, "network", sk.Network)
	return sk, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// copySkillDir copies regular files and directories from src to dst,
// readable (and, where the source is, executable) by everyone and writable
// by no one but the owner; symlinks and special files are refused.
func copySkillDir(src, dst string) error {
	var total int64
	files := 0
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !info.Mode().IsRegular():
			return fmt.Errorf("%w: %s is not a regular file or directory", ErrInvalidSkill, rel)
		}
		files++
		total += info.Size()
		if files > maxSkillFiles || total > maxSkillDirBytes {
			return fmt.Errorf("%w: directory larger than %d files or %d bytes", ErrInvalidSkill, maxSkillFiles, maxSkillDirBytes)
		}
		mode := os.FileMode(0o644)
		if info.Mode()&0o111 != 0 {
			mode = 0o755
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		if err := out.Chmod(mode); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// GetSkill returns a registered skill.
func (s *Service) GetSkill(_ context.Context, name string) (*Skill, error) {
	if ValidateID(name) != nil {
		return nil, fmt.Errorf("%w: %q", ErrSkillNotFound, name)
	}
	var sk Skill
	err := s.control.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(prefixSkill + name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: %q", ErrSkillNotFound, name)
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &sk) })
	})
	if err != nil {
		return nil, err
	}
	return &sk, nil
}

// ListSkills returns the registered skills by name.
func (s *Service) ListSkills(context.Context) ([]Skill, error) {
	out := []Skill{}
	err := s.control.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixSkill), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var sk Skill
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &sk) }); err != nil {
				return fmt.Errorf("decode skill %s: %w", it.Item().Key(), err)
			}
			out = append(out, sk)
		}
		return nil
	})
	return out, err
}

// RemoveSkill unregisters a skill and deletes its copy. Workspaces that
// enabled it simply stop seeing it.
func (s *Service) RemoveSkill(ctx context.Context, name string) error {
	if _, err := s.GetSkill(ctx, name); err != nil {
		return err
	}
	if err := kv.UpdateSync(s.control, func(txn *badger.Txn) error { return txn.Delete([]byte(prefixSkill + name)) }); err != nil {
		return err
	}
	return os.RemoveAll(s.skillDir(name))
}

// SkillState is a registered skill as one workspace sees it.
type SkillState struct {
	Skill
	Enabled bool `json:"enabled"`
	// MissingCredentials are declared credentials the workspace lacks.
	MissingCredentials []string `json:"missing_credentials,omitempty"`
}

// EnableSkill lets workspace ws's agent use a registered skill. This is an
// operator action (CLI or an API token for the workspace); no agent tool
// can call it.
func (s *Service) EnableSkill(ctx context.Context, ws, name string) error {
	return s.setSkillEnabled(ctx, ws, name, true)
}

// DisableSkill withdraws a skill from workspace ws.
func (s *Service) DisableSkill(ctx context.Context, ws, name string) error {
	return s.setSkillEnabled(ctx, ws, name, false)
}

func (s *Service) setSkillEnabled(ctx context.Context, ws, name string, on bool) error {
	if on {
		if _, err := s.GetSkill(ctx, name); err != nil {
			return err
		}
	} else if ValidateID(name) != nil {
		return fmt.Errorf("%w: %q", ErrSkillNotFound, name)
	}
	db, release, err := s.DB(ctx, ws)
	if err != nil {
		return err
	}
	defer release()
	return kv.UpdateSync(db, func(txn *badger.Txn) error {
		if on {
			return txn.Set([]byte(prefixSkill+name), []byte(time.Now().UTC().Format(time.RFC3339)))
		}
		if _, err := txn.Get([]byte(prefixSkill + name)); errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: %s", ErrSkillNotEnabled, name)
		}
		return txn.Delete([]byte(prefixSkill + name))
	})
}

func (s *Service) enabledSkillNames(ctx context.Context, ws string) (map[string]bool, error) {
	db, release, err := s.DB(ctx, ws)
	if err != nil {
		return nil, err
	}
	defer release()
	out := map[string]bool{}
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixSkill)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out[strings.TrimPrefix(string(it.Item().Key()), prefixSkill)] = true
		}
		return nil
	})
	return out, err
}

// WorkspaceSkills lists every registered skill with whether ws enabled it
// and which declared credentials ws lacks.
func (s *Service) WorkspaceSkills(ctx context.Context, ws string) ([]SkillState, error) {
	enabled, err := s.enabledSkillNames(ctx, ws)
	if err != nil {
		return nil, err
	}
	all, err := s.ListSkills(ctx)
	if err != nil {
		return nil, err
	}
	creds, err := s.ListCredentials(ctx, ws)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, c := range creds {
		have[c.Name] = true
	}
	out := make([]SkillState, 0, len(all))
	for _, sk := range all {
		st := SkillState{Skill: sk, Enabled: enabled[sk.Name]}
		for _, c := range sk.Credentials {
			if !have[c] {
				st.MissingCredentials = append(st.MissingCredentials, c)
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// skillTools returns a tool per skill enabled in ws (and still registered).
func (s *Service) skillTools(ctx context.Context, ws string) ([]agent.Tool, []agent.SkillInfo, error) {
	enabled, err := s.enabledSkillNames(ctx, ws)
	if err != nil || len(enabled) == 0 {
		return nil, nil, err
	}
	names := make([]string, 0, len(enabled))
	for n := range enabled {
		names = append(names, n)
	}
	sort.Strings(names)
	var tools []agent.Tool
	var infos []agent.SkillInfo
	for _, n := range names {
		sk, err := s.GetSkill(ctx, n)
		if errors.Is(err, ErrSkillNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		info := agent.SkillInfo{Name: sk.Name, Description: sk.Description}
		tools = append(tools, agent.SkillTool(info, sk.Schema, skillRunner{s: s, ws: ws}))
		infos = append(infos, info)
	}
	return tools, infos, nil
}

// skillRunner is agent.SkillRunner for one workspace.
type skillRunner struct {
	s  *Service
	ws string
}

func (r skillRunner) RunSkill(ctx context.Context, name string, params json.RawMessage) (string, error) {
	return r.s.RunSkill(ctx, r.ws, name, params)
}

// credentialEnvName is how a credential is named in a skill's environment.
func credentialEnvName(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// RunSkill runs an enabled skill for workspace ws in a sandbox of its own:
// its directory read-only at /skill, no workspace, loopback-only network,
// the declared credentials as environment variables and nothing else of the
// host's environment, params as JSON on stdin. It returns stdout (capped)
// with every credential value, and its base64 and hex forms, replaced by
// [REDACTED]. A non-zero exit is an error carrying the scrubbed end of
// stderr.
func (s *Service) RunSkill(ctx context.Context, ws, name string, params json.RawMessage) (string, error) {
	w, err := s.Get(ctx, ws)
	if err != nil {
		return "", err
	}
	enabled, err := s.enabledSkillNames(ctx, ws)
	if err != nil {
		return "", err
	}
	if !enabled[name] {
		return "", fmt.Errorf("%w: %s", ErrSkillNotEnabled, name)
	}
	sk, err := s.GetSkill(ctx, name)
	if err != nil {
		return "", err
	}
	if sk.Network && len(sk.Egress) == 0 { // registered before egress lists existed
		return "", fmt.Errorf("skill %s: %w", name, ErrSkillEgress)
	}
	if sk.Network && !egressAvailable() {
		return "", fmt.Errorf("skill %s needs network egress, which needs bulkhead to run as root (an unprivileged bulkhead gives sandboxes loopback only)", name)
	}
	var env []string
	var secrets [][]byte
	for _, c := range sk.Credentials {
		v, err := s.Credential(ctx, ws, c)
		if errors.Is(err, ErrCredentialNotFound) {
			return "", fmt.Errorf("skill %s needs credential %q, which workspace %s does not have", name, c, ws)
		}
		if err != nil {
			return "", err
		}
		secrets = append(secrets, v.Reveal())
		env = append(env, credentialEnvName(c)+"="+string(v.Reveal()))
	}
	uid, gid := w.HostUID, w.HostGID
	if os.Geteuid() != 0 {
		uid, gid = uint32(os.Getuid()), uint32(os.Getgid())
	}
	cfg := sandbox.Config{
		ID:       "skill-" + randHex(8),
		Hostname: "skill-" + sk.Name,
		HostUID:  uid, HostGID: gid,
		Binds: []sandbox.Bind{{Source: s.skillDir(sk.Name), Target: "/skill"}},
		Limits: sandbox.Limits{
			MemoryBytes: 256 << 20, Pids: 64, CPUs: 1, TmpBytes: 32 << 20,
			Timeout: time.Duration(sk.Timeout),
		},
		Env:         env,
		EnvAllow:    []string{},
		IdleTimeout: -1,
	}
	if sk.Network {
		cfg.Env = append(cfg.Env, egressEnv...)
	}
	if len(params) == 0 {
		params = json.RawMessage(`{}`)
	}
	sb, err := sandbox.Start(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("skill %s: start sandbox: %w", name, err)
	}
	defer sb.Close()
	if sk.Network {
		proxy, err := s.startEgressRules(sb, ws, sk.Egress, s.log.With("workspace", ws, "skill", name))
		if err != nil {
			return "", fmt.Errorf("skill %s: egress proxy: %w", name, err)
		}
		defer proxy.Close()
	}
	stdout := &capWriter{max: int(sk.MaxOutput)}
	stderr := &capWriter{max: 256 << 10}
	res, err := sb.Exec(ctx, sandbox.Command{
		Args:   []string{"/skill/" + filepath.ToSlash(sk.Exec)},
		Dir:    "/tmp",
		Stdin:  bytes.NewReader(params),
		Stdout: stdout, Stderr: stderr,
	})
	if err != nil {
		return "", fmt.Errorf("skill %s: %w", name, err)
	}
	out := scrubSecrets(stdout.buf.String(), secrets)
	if stdout.cut {
		out += fmt.Sprintf("\n[skill output truncated at %d bytes]", sk.MaxOutput)
	}
	switch {
	case res.TimedOut:
		return out, fmt.Errorf("skill %s timed out after %s", name, time.Duration(sk.Timeout))
	case res.ExitCode != 0:
		tail := stderr.buf.String()
		if len(tail) > skillStderrKeep {
			tail = tail[len(tail)-skillStderrKeep:]
		}
		return out, fmt.Errorf("skill %s exited with code %d: %s", name, res.ExitCode, strings.TrimSpace(scrubSecrets(tail, secrets)))
	}
	return out, nil
}

// scrubSecrets replaces each secret, and its base64 and hex encodings, with
// [REDACTED].
func scrubSecrets(s string, secrets [][]byte) string {
	for _, v := range secrets {
		if len(v) < 4 {
			continue
		}
		for _, form := range []string{string(v), base64.StdEncoding.EncodeToString(v), base64.RawStdEncoding.EncodeToString(v),
			base64.URLEncoding.EncodeToString(v), hex.EncodeToString(v)} {
			s = strings.ReplaceAll(s, form, "[REDACTED]")
		}
	}
	return s
}
