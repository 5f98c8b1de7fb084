package workspace

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/bulkhead-dev/bulkhead/memory"
	"github.com/bulkhead-dev/bulkhead/netguard"
	"github.com/bulkhead-dev/bulkhead/sandbox"
)

// Config is a workspace's configuration. Every field has a default
// (DefaultConfig) and is validated on every write.
type Config struct {
	// Provider and Model pick the agent's primary model.
	Provider string `json:"provider"`
	Model    string `json:"model"`
	// Fallbacks are tried in order when the primary fails with a retryable class.
	Fallbacks []ModelRef `json:"fallbacks"`
	// Persona names the bootstrap file set the agent starts from.
	Persona string     `json:"persona"`
	Limits  Limits     `json:"limits"`
	Tools   ToolPolicy `json:"tools"`
	Files   FilePolicy `json:"files"`
	// Memory tunes hybrid search (weights, fusion, MMR, decay, ...).
	Memory memory.Config `json:"memory"`
	// Egress is what the sandbox may reach on the network.
	Egress EgressPolicy `json:"egress"`
}

// EgressPolicy lists the destinations a workspace's sandbox may reach. The
// sandbox's network has loopback only; its commands get HTTP_PROXY and
// HTTPS_PROXY pointing at a host proxy that allows these names (entries
// "name", "name:port", "*.suffix[:port]"; no port means 443 and 80) and
// dials through the node's address guard, so private and metadata addresses
// stay closed unless the operator allows them node-wide. Empty: no egress.
type EgressPolicy struct {
	Allow []string `json:"allow"`
}

// MaxEgressEntries bounds egress.allow.
const MaxEgressEntries = 256

// ModelRef names one model of one provider.
type ModelRef struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
}

// Limits bound what a workspace's sandbox and runs may use.
type Limits struct {
	Memory      ByteSize `json:"memory"`       // sandbox memory (cgroup memory.max; sandboxes get no swap)
	Pids        int      `json:"pids"`         // processes and threads in the sandbox
	CPU         float64  `json:"cpu"`          // CPU cores' worth of quota
	Disk        ByteSize `json:"disk"`         // bytes in the workspace's files
	Inodes      int64    `json:"inodes"`       // files and directories in the workspace
	Tmp         ByteSize `json:"tmp"`          // size of the sandbox's /tmp
	ExecTimeout Duration `json:"exec_timeout"` // wall clock per command
	RunTimeout  Duration `json:"run_timeout"`  // wall clock per agent run
	IdleTimeout Duration `json:"idle_timeout"` // an unused sandbox is reaped after this
	MaxTurns    int      `json:"max_turns"`    // model calls per agent run
}

// ToolPolicy restricts which agent tools a workspace may use. Empty Allow
// means all tools; Deny always wins.
type ToolPolicy struct {
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
}

// FilePolicy is the path policy of the workspace's file view: deny globs are
// invisible and not creatable, read-only globs cannot be changed.
// `.bulkhead/**` is always read-only to the sandbox.
type FilePolicy struct {
	Deny         []string `json:"deny"`
	ReadOnly     []string `json:"read_only"`
	AllowDevices bool     `json:"allow_devices"`
}

// Providers the agent runtime speaks, by config name.
var Providers = []string{"anthropic", "openai", "openrouter", "groq", "cerebras", "mistral", "xai", "ollama", "vllm", "gemini"}

// DefaultConfig returns the configuration a workspace gets when none is given.
func DefaultConfig() Config {
	return Config{
		Provider:  "anthropic",
		Model:     "claude-sonnet-4-5",
		Fallbacks: []ModelRef{},
		Persona:   "developer",
		Limits: Limits{
			Memory:      512 << 20,
			Pids:        256,
			CPU:         1,
			Disk:        2 << 30,
			Inodes:      200_000,
			Tmp:         128 << 20,
			ExecTimeout: Duration(10 * time.Minute),
			RunTimeout:  Duration(30 * time.Minute),
			IdleTimeout: Duration(5 * time.Minute),
			MaxTurns:    50,
		},
		Tools:  ToolPolicy{Allow: []string{}, Deny: []string{}},
		Files:  FilePolicy{Deny: []string{}, ReadOnly: []string{}},
		Memory: memory.DefaultConfig(),
	}
}

// Minimums below which a sandbox cannot start (its init needs them).
const (
	MinMemory  = sandbox.MinMemoryBytes
	MinPids    = sandbox.MinPids
	MinTmp     = 1 << 20
	MinDisk    = 1 << 20
	MinInodes  = 16
	MinTimeout = time.Second
)

// FieldError is one invalid field.
type FieldError struct {
	Field string // dotted JSON path, e.g. limits.memory
	Msg   string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Msg }

// ConfigError lists every invalid field of a config.
type ConfigError struct{ Fields []FieldError }

func (e *ConfigError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid config: " + strings.Join(parts, "; ")
}

func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

var (
	modelRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$`) })
	toolRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9_][a-z0-9_.-]{0,63}$`) })
)

// Validate checks every field and returns a *ConfigError listing all problems.
func (c *Config) Validate() error {
	var fe []FieldError
	bad := func(field, format string, args ...any) {
		fe = append(fe, FieldError{field, fmt.Sprintf(format, args...)})
	}
	checkProvider := func(field, p string) {
		for _, q := range Providers {
			if p == q {
				return
			}
		}
		bad(field, "unknown provider %q (want one of %s)", p, strings.Join(Providers, ", "))
	}
	checkProvider("provider", c.Provider)
	if !modelRE().MatchString(c.Model) {
		bad("model", "%q is not a model name", c.Model)
	}
	for i, f := range c.Fallbacks {
		checkProvider(fmt.Sprintf("fallbacks[%d].provider", i), f.Provider)
		if !modelRE().MatchString(f.Model) {
			bad(fmt.Sprintf("fallbacks[%d].model", i), "%q is not a model name", f.Model)
		}
	}
	if len(c.Fallbacks) > 8 {
		bad("fallbacks", "%d entries, at most 8", len(c.Fallbacks))
	}
	if !idRE().MatchString(c.Persona) {
		bad("persona", "%q must match %s", c.Persona, IDRule)
	}
	l := c.Limits
	if l.Memory < MinMemory {
		bad("limits.memory", "%s is below the minimum %s", l.Memory, ByteSize(MinMemory))
	}
	if l.Pids < MinPids || l.Pids > 1<<22 {
		bad("limits.pids", "%d is outside %d..%d", l.Pids, MinPids, 1<<22)
	}
	if math.IsNaN(l.CPU) || l.CPU < 0.01 || l.CPU > 1024 {
		bad("limits.cpu", "%v is outside 0.01..1024 cores", l.CPU)
	}
	if l.Disk < MinDisk {
		bad("limits.disk", "%s is below the minimum %s", l.Disk, ByteSize(MinDisk))
	}
	if l.Inodes < MinInodes {
		bad("limits.inodes", "%d is below the minimum %d", l.Inodes, MinInodes)
	}
	if l.Tmp < MinTmp {
		bad("limits.tmp", "%s is below the minimum %s", l.Tmp, ByteSize(MinTmp))
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"limits.exec_timeout", l.ExecTimeout}, {"limits.run_timeout", l.RunTimeout}, {"limits.idle_timeout", l.IdleTimeout}} {
		if time.Duration(d.v) < MinTimeout {
			bad(d.name, "%s is below the minimum %s", d.v, MinTimeout)
		}
	}
	if l.MaxTurns < 1 || l.MaxTurns > 10_000 {
		bad("limits.max_turns", "%d is outside 1..10000", l.MaxTurns)
	}
	for i, t := range c.Tools.Allow {
		if !toolRE().MatchString(t) {
			bad(fmt.Sprintf("tools.allow[%d]", i), "%q is not a tool name", t)
		}
	}
	for i, t := range c.Tools.Deny {
		if !toolRE().MatchString(t) {
			bad(fmt.Sprintf("tools.deny[%d]", i), "%q is not a tool name", t)
		}
	}
	checkGlobs := func(field string, globs []string) {
		for i, g := range globs {
			if err := validGlob(g); err != nil {
				bad(fmt.Sprintf("%s[%d]", field, i), "%q: %v", g, err)
			}
		}
	}
	checkGlobs("files.deny", c.Files.Deny)
	checkGlobs("files.read_only", c.Files.ReadOnly)
	if len(c.Egress.Allow) > MaxEgressEntries {
		bad("egress.allow", "%d entries, at most %d", len(c.Egress.Allow), MaxEgressEntries)
	} else if _, err := netguard.ParseEgressRules(c.Egress.Allow); err != nil {
		bad("egress.allow", "%v", err)
	}
	if err := c.Memory.WithDefaults().Validate(); err != nil {
		bad("memory", "%s", strings.TrimPrefix(err.Error(), memory.ErrInvalidConfig.Error()+": "))
	}
	if len(fe) > 0 {
		return &ConfigError{Fields: fe}
	}
	return nil
}

func validGlob(g string) error {
	switch {
	case g == "":
		return errors.New("empty pattern")
	case strings.ContainsRune(g, 0):
		return errors.New("NUL in pattern")
	case strings.HasPrefix(g, "/"):
		return errors.New("patterns are relative to the workspace root")
	case len(g) > 1024:
		return errors.New("pattern longer than 1024 bytes")
	}
	for _, seg := range strings.Split(g, "/") {
		if seg == ".." {
			return errors.New(`".." in pattern`)
		}
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return err
		}
	}
	return nil
}

// ParseConfig decodes a JSON config strictly over the defaults: unknown keys
// and wrong types are errors naming the field. The result is validated.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	if err := decodeStrict(data, &c); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return configDecodeError(err)
	}
	if dec.More() {
		return &ConfigError{Fields: []FieldError{{"(document)", "trailing data after the JSON object"}}}
	}
	return nil
}

func configDecodeError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	msg := err.Error()
	switch {
	case errors.As(err, &te):
		return &ConfigError{Fields: []FieldError{{te.Field, fmt.Sprintf("want %s, got a JSON %s", te.Type, te.Value)}}}
	case errors.As(err, &se):
		return &ConfigError{Fields: []FieldError{{"(document)", fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)}}}
	case strings.HasPrefix(msg, "json: unknown field "):
		return &ConfigError{Fields: []FieldError{{strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`), "unknown config key"}}}
	}
	var fe *fieldDecodeError
	if errors.As(err, &fe) {
		return &ConfigError{Fields: []FieldError{{"(value)", fe.Error()}}}
	}
	return &ConfigError{Fields: []FieldError{{"(document)", msg}}}
}

type fieldDecodeError struct{ msg string }

func (e *fieldDecodeError) Error() string { return e.msg }

// Set changes one field by its dotted JSON path (limits.memory=1GiB,
// tools.deny=["bash"], fallbacks=[{"provider":"openai","model":"gpt-4o"}]).
// The value is parsed as JSON if it can be, else taken as a string. The
// result is validated; on error c is unchanged.
func (c *Config) Set(key, value string) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	parts := strings.Split(key, ".")
	cur := m
	for i, p := range parts {
		if i == len(parts)-1 {
			break // a leaf the JSON left out (omitempty) may still exist: the strict decode decides
		}
		v, ok := cur[p]
		if !ok {
			return &ConfigError{Fields: []FieldError{{key, "unknown config key"}}}
		}
		sub, ok := v.(map[string]any)
		if !ok {
			return &ConfigError{Fields: []FieldError{{strings.Join(parts[:i+1], "."), "not an object; cannot set a sub-key"}}}
		}
		cur = sub
	}
	var parsed any
	if err := json.Unmarshal([]byte(value), &parsed); err != nil {
		parsed = value
	}
	cur[parts[len(parts)-1]] = parsed
	raw, err = json.Marshal(m)
	if err != nil {
		return err
	}
	var next Config
	if err := decodeStrict(raw, &next); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) && len(ce.Fields) == 1 {
			// Name the field by the full dotted key the caller gave.
			if f := ce.Fields[0].Field; f == "(value)" || f == parts[len(parts)-1] {
				ce.Fields[0].Field = key
			}
		}
		return err
	}
	if err := next.Validate(); err != nil {
		return err
	}
	*c = next
	return nil
}

// ByteSize is a size in bytes that reads "512MiB", "1GB" or a plain number,
// and writes the exact binary unit when it can.
type ByteSize int64

func (b ByteSize) String() string {
	for _, u := range []struct {
		n    int64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if b != 0 && int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalJSON writes the size as a string with a unit.
func (b ByteSize) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// UnmarshalJSON reads a number of bytes or a string with a unit.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var n json.Number
	if err := json.Unmarshal(data, &n); err == nil {
		v, err := n.Int64()
		if err != nil {
			return &fieldDecodeError{fmt.Sprintf("size %s is not a whole number of bytes", n)}
		}
		*b = ByteSize(v)
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return &fieldDecodeError{fmt.Sprintf("size must be a number or a string like \"512MiB\", got %s", data)}
	}
	v, err := humanize.ParseBytes(s)
	if err != nil || v > math.MaxInt64 {
		return &fieldDecodeError{fmt.Sprintf("size %q: want a number with an optional unit (KiB, MiB, GiB, KB, MB, GB)", s)}
	}
	*b = ByteSize(v)
	return nil
}

// Duration is a time.Duration written as "30s", "5m".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string such as "90s" or "1h30m".
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return &fieldDecodeError{fmt.Sprintf("duration must be a string like \"30s\", got %s", data)}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &fieldDecodeError{fmt.Sprintf("duration %q: want a number with a unit (ms, s, m, h)", s)}
	}
	*d = Duration(v)
	return nil
}

// ApplySets applies "dotted.key=value" assignments in order (see Set).
func ApplySets(c *Config, sets []string) error {
	for _, kv := range sets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return &ConfigError{Fields: []FieldError{{kv, "want KEY=VALUE, e.g. limits.memory=1GiB"}}}
		}
		if err := c.Set(k, v); err != nil {
			return err
		}
	}
	return nil
}
