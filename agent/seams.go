package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Command is one command to run in a workspace's sandbox.
type Command struct {
	Args []string
	// Dir is the working directory relative to the workspace root.
	Dir     string
	Stdin   []byte
	Timeout time.Duration
	// MaxOutput caps stdout and stderr, each, in bytes.
	MaxOutput int
}

// CommandResult is how a command ended.
type CommandResult struct {
	Stdout, Stderr []byte
	ExitCode       int
	TimedOut       bool
	Truncated      bool
}

// ToolExecutor runs one tool call inside a workspace's sandbox. It kills the
// whole process tree when ctx is cancelled or the command's timeout passes.
// The error is for failures to run the command at all; a command that runs
// and fails is a CommandResult with a non-zero ExitCode.
type ToolExecutor interface {
	Exec(ctx context.Context, cmd Command) (CommandResult, error)
}

// MemoryHit is one memory search result.
type MemoryHit struct {
	Text   string  `json:"text"`
	Source string  `json:"source,omitempty"`
	Score  float64 `json:"score"`
}

// Memory is a workspace's long-term memory.
type Memory interface {
	Search(ctx context.Context, query string, limit int) ([]MemoryHit, error)
	Store(ctx context.Context, text string, tags []string) error
}

// MemoryFlusher is given the messages about to be compacted away, so that
// what should outlive the summary can be written to memory first.
type MemoryFlusher interface {
	FlushBeforeCompaction(ctx context.Context, runID string, msgs []Message) error
}

// BashTool is the bash tool: the command runs through exec (the workspace's
// sandbox), never on the host.
func BashTool(exec ToolExecutor, timeout time.Duration, maxOutput int) Tool {
	return FuncTool{
		ToolName:        "bash",
		ToolDescription: "Run a bash command in the workspace. The working directory is the workspace root. Output is stdout, then stderr, then the exit code.",
		ToolSchema:      json.RawMessage(`{"type":"object","properties":{"command":{"type":"string","description":"the bash command line"}},"required":["command"]}`),
		Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
			var in struct {
				Command string `json:"command"`
			}
			if err := json.Unmarshal(args, &in); err != nil {
				return "", fmt.Errorf("decode arguments: %w", err)
			}
			if strings.TrimSpace(in.Command) == "" {
				return "", errors.New("command is empty")
			}
			res, err := exec.Exec(ctx, Command{Args: []string{"bash", "-c", in.Command}, Timeout: timeout, MaxOutput: maxOutput})
			if err != nil {
				return "", fmt.Errorf("run command: %w", err)
			}
			var b strings.Builder
			b.Write(res.Stdout)
			if len(res.Stderr) > 0 {
				if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
					b.WriteByte('\n')
				}
				b.WriteString("[stderr]\n")
				b.Write(res.Stderr)
			}
			if res.Truncated {
				b.WriteString("\n[output truncated]")
			}
			if res.TimedOut {
				return b.String(), fmt.Errorf("command timed out after %s", timeout)
			}
			if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
				b.WriteByte('\n')
			}
			fmt.Fprintf(&b, "[exit code %d]", res.ExitCode)
			return b.String(), nil
		},
	}
}

// MemoryTools are memory_search and memory_store over mem.
func MemoryTools(mem Memory) []Tool {
	search := FuncTool{
		ToolName:        "memory_search",
		ToolDescription: "Search the workspace's long-term memory. Returns the best matching notes with their source.",
		ToolSchema:      json.RawMessage(`{"type":"object","properties":{"query":{"type":"string"},"limit":{"type":"integer","minimum":1,"maximum":50}},"required":["query"]}`),
		Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
			var in struct {
				Query string `json:"query"`
				Limit int    `json:"limit"`
			}
			if err := json.Unmarshal(args, &in); err != nil {
				return "", fmt.Errorf("decode arguments: %w", err)
			}
			if strings.TrimSpace(in.Query) == "" {
				return "", errors.New("query is empty")
			}
			if in.Limit <= 0 || in.Limit > 50 {
				in.Limit = 8
			}
			hits, err := mem.Search(ctx, in.Query, in.Limit)
			if err != nil {
				return "", fmt.Errorf("search memory: %w", err)
			}
			if len(hits) == 0 {
				return "no results", nil
			}
			b, err := json.Marshal(hits)
			return string(b), err
		},
	}
	store := FuncTool{
		ToolName:        "memory_store",
		ToolDescription: "Store a note in the workspace's long-term memory so later sessions can find it.",
		ToolSchema:      json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"},"tags":{"type":"array","items":{"type":"string"}}},"required":["text"]}`),
		Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
			var in struct {
				Text string   `json:"text"`
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(args, &in); err != nil {
				return "", fmt.Errorf("decode arguments: %w", err)
			}
			if strings.TrimSpace(in.Text) == "" {
				return "", errors.New("text is empty")
			}
			if err := mem.Store(ctx, in.Text, in.Tags); err != nil {
				return "", fmt.Errorf("store memory: %w", err)
			}
			return "stored", nil
		},
	}
	return []Tool{search, store}
}

// SkillRunner runs a registered skill in its own sandbox (its directory
// read-only, no workspace files, the workspace's credentials for it as env)
// with params as JSON on stdin, and returns its stdout. The credentials stay
// inside the implementation: the agent gets stdout only, and the
// implementation removes the credential values from it.
type SkillRunner interface {
	RunSkill(ctx context.Context, skill string, params json.RawMessage) (string, error)
}

// SkillTool is the tool for one enabled skill: "skill_<name>", described by
// the skill's SKILL.md summary, taking any JSON object (or schema, if the
// skill declares one) and passing it to run.
func SkillTool(info SkillInfo, schema json.RawMessage, run SkillRunner) Tool {
	if len(schema) == 0 {
		schema = json.RawMessage(`{"type":"object","additionalProperties":true}`)
	}
	name := info.Name
	return FuncTool{
		ToolName:        "skill_" + name,
		ToolDescription: info.Description,
		ToolSchema:      schema,
		Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
			out, err := run.RunSkill(ctx, name, args)
			if err != nil {
				return out, fmt.Errorf("skill %s: %w", name, err)
			}
			return out, nil
		},
	}
}
