package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// Files is a workspace's file tree as the file tools see it. Paths are
// slash-separated and relative to the workspace root, as in io/fs. The
// implementation enforces the workspace's path policy (the same rules as the
// sandbox's FUSE view): *fusefs.Tree is the one the wiring passes.
type Files interface {
	ReadFile(rel string) ([]byte, error)
	WriteFile(rel string, data []byte, perm fs.FileMode) error
	MkdirAll(rel string, perm fs.FileMode) error
	Stat(rel string) (fs.FileInfo, error)
	ReadDir(rel string) ([]fs.DirEntry, error)
	WalkDir(rel string, fn fs.WalkDirFunc) error
}

// WorkspaceMount is where the sandbox mounts the workspace; file tool paths
// may use it so the model can use the same paths in bash and in file tools.
const WorkspaceMount = "/workspace"

// ErrBadPath means a tool path leaves the workspace or is malformed.
var ErrBadPath = errors.New("path must stay inside the workspace")

// FileToolLimits bound the file tools.
type FileToolLimits struct {
	MaxReadBytes  int // read_file; default 256 KiB
	MaxWriteBytes int // write_file and edit_file results; default 4 MiB
	MaxEntries    int // list_dir, glob; default 1000
	MaxMatches    int // grep; default 500
	MaxGrepFile   int // grep skips larger files; default 2 MiB
}

func (l FileToolLimits) withDefaults() FileToolLimits {
	if l.MaxReadBytes <= 0 {
		l.MaxReadBytes = 256 << 10
	}
	if l.MaxWriteBytes <= 0 {
		l.MaxWriteBytes = 4 << 20
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = 1000
	}
	if l.MaxMatches <= 0 {
		l.MaxMatches = 500
	}
	if l.MaxGrepFile <= 0 {
		l.MaxGrepFile = 2 << 20
	}
	return l
}

// toolPath turns a model-supplied path into a root-relative one: "",
// ".", "/workspace" and "/workspace/x" are accepted; any other absolute path
// and any path that climbs out with ".." is refused.
func toolPath(p string) (string, error) {
	p = strings.TrimSpace(p)
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%w: %q", ErrBadPath, p)
	}
	if p == WorkspaceMount || strings.HasPrefix(p, WorkspaceMount+"/") {
		p = strings.TrimPrefix(p, WorkspaceMount)
		p = strings.TrimLeft(p, "/")
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%w: %q is outside %s", ErrBadPath, p, WorkspaceMount)
	}
	if p == "" {
		return ".", nil
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: %q", ErrBadPath, p)
	}
	return c, nil
}

func decodeArgs(args json.RawMessage, v any) error {
	if err := json.Unmarshal(args, v); err != nil {
		return fmt.Errorf("decode arguments: %w", err)
	}
	return nil
}

// FileTools are read_file, write_file, edit_file, list_dir, glob and grep
// over files.
func FileTools(files Files, lim FileToolLimits) []Tool {
	lim = lim.withDefaults()
	return []Tool{
		FuncTool{ToolName: "read_file",
			ToolDescription: "Read a text file in the workspace. Optional 1-based start_line and end_line select a range.",
			ToolSchema:      json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"},"start_line":{"type":"integer","minimum":1},"end_line":{"type":"integer","minimum":1}},"required":["path"]}`),
			Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
				var in struct {
					Path      string `json:"path"`
					StartLine int    `json:"start_line"`
					EndLine   int    `json:"end_line"`
				}
				if err := decodeArgs(args, &in); err != nil {
					return "", err
				}
				rel, err := toolPath(in.Path)
				if err != nil {
					return "", err
				}
				b, err := files.ReadFile(rel)
				if err != nil {
					return "", err
				}
				if bytes.IndexByte(b[:min(len(b), 8000)], 0) >= 0 {
					return fmt.Sprintf("%s is a binary file of %d bytes", rel, len(b)), nil
				}
				text := string(b)
				if in.StartLine > 0 || in.EndLine > 0 {
					lines := strings.SplitAfter(text, "\n")
					start := max(in.StartLine, 1)
					end := in.EndLine
					if end <= 0 || end > len(lines) {
						end = len(lines)
					}
					if start > end {
						return "", fmt.Errorf("start_line %d is past the end (%d lines)", start, len(lines))
					}
					text = strings.Join(lines[start-1:end], "")
				}
				return TruncateMiddle(text, lim.MaxReadBytes, rel), nil
			}},
		FuncTool{ToolName: "write_file",
			ToolDescription: "Create or overwrite a file in the workspace with the given content; parent directories are created.",
			ToolSchema:      json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"}},"required":["path","content"]}`),
			Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
				var in struct {
					Path    string `json:"path"`
					Content string `json:"content"`
				}
				if err := decodeArgs(args, &in); err != nil {
					return "", err
				}
				rel, err := toolPath(in.Path)
				if err != nil {
					return "", err
				}
				if rel == "." {
					return "", fmt.Errorf("%w: a file path is required", ErrBadPath)
				}
				if len(in.Content) > lim.MaxWriteBytes {
					return "", fmt.Errorf("content is %d bytes, the limit is %d", len(in.Content), lim.MaxWriteBytes)
				}
				if dir := path.Dir(rel); dir != "." {
					if err := files.MkdirAll(dir, 0o755); err != nil {
						return "", err
					}
				}
				if err := files.WriteFile(rel, []byte(in.Content), 0o644); err != nil {
					return "", err
				}
				return fmt.Sprintf("wrote %d bytes to %s", len(in.Content), rel), nil
			}},
		FuncTool{ToolName: "edit_file",
			ToolDescription: "Replace old_text with new_text in a file. old_text must occur exactly once unless replace_all is true.",
			ToolSchema:      json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"},"old_text":{"type":"string"},"new_text":{"type":"string"},"replace_all":{"type":"boolean"}},"required":["path","old_text","new_text"]}`),
			Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
				var in struct {
					Path       string `json:"path"`
					OldText    string `json:"old_text"`
					NewText    string `json:"new_text"`
					ReplaceAll bool   `json:"replace_all"`
				}
				if err := decodeArgs(args, &in); err != nil {
					return "", err
				}
				rel, err := toolPath(in.Path)
				if err != nil {
					return "", err
				}
				if in.OldText == "" {
					return "", errors.New("old_text is empty")
				}
				b, err := files.ReadFile(rel)
				if err != nil {
					return "", err
				}
				n := strings.Count(string(b), in.OldText)
				switch {
				case n == 0:
					return "", fmt.Errorf("old_text not found in %s", rel)
				case n > 1 && !in.ReplaceAll:
					return "", fmt.Errorf("old_text occurs %d times in %s; add context to make it unique or set replace_all", n, rel)
				}
				out := strings.Replace(string(b), in.OldText, in.NewText, -1)
				if len(out) > lim.MaxWriteBytes {
					return "", fmt.Errorf("the result would be %d bytes, the limit is %d", len(out), lim.MaxWriteBytes)
				}
				if err := files.WriteFile(rel, []byte(out), 0o644); err != nil {
					return "", err
				}
				return fmt.Sprintf("replaced %d occurrence(s) in %s", n, rel), nil
			}},
		FuncTool{ToolName: "list_dir",
			ToolDescription: "List a directory of the workspace. Directories end in /; files show their size.",
			ToolSchema:      json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"}}}`),
			Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
				var in struct {
					Path string `json:"path"`
				}
				if err := decodeArgs(args, &in); err != nil {
					return "", err
				}
				rel, err := toolPath(in.Path)
				if err != nil {
					return "", err
				}
				entries, err := files.ReadDir(rel)
				if err != nil {
					return "", err
				}
				var b strings.Builder
				for i, e := range entries {
					if i == lim.MaxEntries {
						fmt.Fprintf(&b, "[... %d more entries]\n", len(entries)-i)
						break
					}
					if e.IsDir() {
						fmt.Fprintf(&b, "%s/\n", e.Name())
						continue
					}
					size := int64(-1)
					if info, err := e.Info(); err == nil {
						size = info.Size()
					}
					fmt.Fprintf(&b, "%s\t%d\n", e.Name(), size)
				}
				if b.Len() == 0 {
					return "(empty)", nil
				}
				return b.String(), nil
			}},
		FuncTool{ToolName: "glob",
			ToolDescription: "Find files whose path matches a glob pattern (*, ?, [...] within a segment, ** across segments), relative to path.",
			ToolSchema:      json.RawMessage(`{"type":"object","properties":{"pattern":{"type":"string"},"path":{"type":"string"}},"required":["pattern"]}`),
			Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
				var in struct {
					Pattern string `json:"pattern"`
					Path    string `json:"path"`
				}
				if err := decodeArgs(args, &in); err != nil {
					return "", err
				}
				root, err := toolPath(in.Path)
				if err != nil {
					return "", err
				}
				pat, err := compileGlob(in.Pattern)
				if err != nil {
					return "", err
				}
				var out []string
				more := 0
				err = files.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
					if err != nil {
						if p == root {
							return err
						}
						return nil // unreadable parts below the root are skipped
					}
					if ctx.Err() != nil {
						return ctx.Err()
					}
					if d.IsDir() {
						return nil
					}
					if pat.match(relTo(root, p)) {
						if len(out) < lim.MaxEntries {
							out = append(out, p)
						} else {
							more++
						}
					}
					return nil
				})
				if err != nil {
					return "", err
				}
				if len(out) == 0 {
					return "no matches", nil
				}
				s := strings.Join(out, "\n")
				if more > 0 {
					s += fmt.Sprintf("\n[... %d more matches]", more)
				}
				return s, nil
			}},
		FuncTool{ToolName: "grep",
			ToolDescription: "Search file contents with a regular expression (RE2 syntax). Optional path to search below, glob to filter files.",
			ToolSchema:      json.RawMessage(`{"type":"object","properties":{"pattern":{"type":"string"},"path":{"type":"string"},"glob":{"type":"string"},"ignore_case":{"type":"boolean"}},"required":["pattern"]}`),
			Fn: func(ctx context.Context, args json.RawMessage) (string, error) {
				var in struct {
					Pattern    string `json:"pattern"`
					Path       string `json:"path"`
					Glob       string `json:"glob"`
					IgnoreCase bool   `json:"ignore_case"`
				}
				if err := decodeArgs(args, &in); err != nil {
					return "", err
				}
				root, err := toolPath(in.Path)
				if err != nil {
					return "", err
				}
				expr := in.Pattern
				if in.IgnoreCase {
					expr = "(?i)" + expr
				}
				re, err := regexp.Compile(expr)
				if err != nil {
					return "", fmt.Errorf("bad pattern: %w", err)
				}
				var filter *globPattern
				if in.Glob != "" {
					if filter, err = compileGlob(in.Glob); err != nil {
						return "", err
					}
				}
				var b strings.Builder
				matches := 0
				search := func(p string) error {
					data, err := files.ReadFile(p)
					if err != nil || len(data) > lim.MaxGrepFile || bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
						return nil
					}
					for i, line := range strings.Split(string(data), "\n") {
						if !re.MatchString(line) {
							continue
						}
						matches++
						if matches > lim.MaxMatches {
							return fs.SkipAll
						}
						fmt.Fprintf(&b, "%s:%d:%s\n", p, i+1, TruncateMiddle(line, 400, "line"))
					}
					return nil
				}
				info, err := files.Stat(root)
				if err != nil {
					return "", err
				}
				if !info.IsDir() {
					err = search(root)
				} else {
					err = files.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
						if err != nil {
							return nil
						}
						if ctx.Err() != nil {
							return ctx.Err()
						}
						if d.IsDir() || (filter != nil && !filter.match(relTo(root, p))) {
							return nil
						}
						return search(p)
					})
				}
				if err != nil && !errors.Is(err, fs.SkipAll) {
					return "", err
				}
				if matches == 0 {
					return "no matches", nil
				}
				if matches > lim.MaxMatches {
					fmt.Fprintf(&b, "[stopped after %d matches]", lim.MaxMatches)
				}
				return b.String(), nil
			}},
	}
}

func relTo(root, p string) string {
	if root == "." {
		return p
	}
	return strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
}

// globPattern matches slash-separated paths segment by segment; a segment
// that is exactly ** matches zero or more segments.
type globPattern struct{ segs []string }

func compileGlob(p string) (*globPattern, error) {
	p = strings.Trim(strings.TrimSpace(p), "/")
	if p == "" {
		return nil, errors.New("glob pattern is empty")
	}
	segs := strings.Split(p, "/")
	for _, s := range segs {
		if s == "**" {
			continue
		}
		if _, err := path.Match(s, ""); err != nil {
			return nil, fmt.Errorf("bad glob pattern %q: %w", p, err)
		}
	}
	return &globPattern{segs: segs}, nil
}

func (g *globPattern) match(p string) bool { return matchGlobSegs(g.segs, strings.Split(p, "/")) }

func matchGlobSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(segs); i++ {
				if matchGlobSegs(pat[1:], segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}
