package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"sync"
)

// Tool is something the model can call. Call receives the arguments object
// the model sent (already checked to be a JSON object) and returns the text
// the model sees; an error is shown to the model as a failed call. Call must
// return when ctx ends.
type Tool interface {
	Name() string
	Description() string
	Schema() json.RawMessage
	Call(ctx context.Context, args json.RawMessage) (string, error)
}

// FuncTool adapts a function to Tool.
type FuncTool struct {
	ToolName        string
	ToolDescription string
	ToolSchema      json.RawMessage
	Fn              func(ctx context.Context, args json.RawMessage) (string, error)
}

func (f FuncTool) Name() string            { return f.ToolName }
func (f FuncTool) Description() string     { return f.ToolDescription }
func (f FuncTool) Schema() json.RawMessage { return f.ToolSchema }
func (f FuncTool) Call(ctx context.Context, args json.RawMessage) (string, error) {
	return f.Fn(ctx, args)
}

var toolNameRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`) })

// Registry is the set of tools offered to the model. Safe for concurrent use.
type Registry struct {
	mu    sync.RWMutex
	tools map[string]Tool
}

// NewRegistry returns a registry holding tools; see Add.
func NewRegistry(tools ...Tool) (*Registry, error) {
	r := &Registry{tools: map[string]Tool{}}
	for _, t := range tools {
		if err := r.Add(t); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Add registers t. Names must match [a-zA-Z0-9_-]{1,64} (what both APIs
// accept) and be unique; the schema must be a JSON object.
func (r *Registry) Add(t Tool) error {
	name := t.Name()
	if !toolNameRe().MatchString(name) {
		return fmt.Errorf("add tool %q: invalid name", name)
	}
	if s := t.Schema(); len(s) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(s, &obj); err != nil {
			return fmt.Errorf("add tool %s: schema is not a JSON object: %w", name, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.tools[name]; dup {
		return fmt.Errorf("add tool %s: already registered", name)
	}
	r.tools[name] = t
	return nil
}

// Get returns the tool called name.
func (r *Registry) Get(name string) (Tool, bool) {
	if r == nil {
		return nil, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.tools[name]
	return t, ok
}

// Specs describes the tools to the model, sorted by name so the request (and
// the provider's prompt cache) is stable.
func (r *Registry) Specs() []ToolSpec {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]ToolSpec, 0, len(r.tools))
	for _, t := range r.tools {
		schema := t.Schema()
		if len(schema) == 0 {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out = append(out, ToolSpec{Name: t.Name(), Description: t.Description(), Schema: schema})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
