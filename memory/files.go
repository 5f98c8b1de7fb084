package memory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// maxFileBytes bounds a memory file; larger ones are skipped with a warning.
const maxFileBytes = 4 << 20

// memoryFile reports whether rel (slash-separated, relative to the files
// root) is one the file indexer covers: MEMORY.md or memory/**.md.
func memoryFile(rel string) bool {
	return rel == evergreenPath || (strings.HasPrefix(rel, "memory/") && strings.HasSuffix(strings.ToLower(rel), ".md"))
}

type fileStamp struct {
	size  int64
	mtime time.Time
}

// scanFiles lists the memory files under root without following symlinks
// out of it: root is the tenant's own tree, so it may hold links aimed at
// host files.
func scanFiles(root *os.Root) (map[string]fileStamp, error) {
	out := map[string]fileStamp{}
	add := func(rel string) error {
		fi, err := root.Lstat(rel)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			out[rel] = fileStamp{fi.Size(), fi.ModTime()}
		}
		return nil
	}
	if err := add(evergreenPath); err != nil {
		return nil, err
	}
	err := fs.WalkDir(root.FS(), "memory", func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && memoryFile(p) {
			return add(p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan memory files: %w", err)
	}
	return out, nil
}

// readFile reads one regular file through root (so no symlink leads out of
// it), refusing anything else and anything too large.
func readFile(root *os.Root, rel string) (string, time.Time, error) {
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", time.Time{}, err
	}
	if !fi.Mode().IsRegular() {
		return "", time.Time{}, fmt.Errorf("%s is not a regular file", rel)
	}
	if fi.Size() > maxFileBytes {
		return "", time.Time{}, fmt.Errorf("%s is %d bytes, over the %d limit", rel, fi.Size(), maxFileBytes)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return "", time.Time{}, err
	}
	if len(b) > maxFileBytes {
		return "", time.Time{}, fmt.Errorf("%s grew over the %d limit", rel, maxFileBytes)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), fi.ModTime(), nil
}

// chunkMarkdown splits text into pieces of at most size bytes on line
// boundaries (a longer line is cut at a rune boundary), each but the first
// starting with up to overlap bytes of the previous piece's last lines, and
// each prefixed with the heading it sits under when it does not start with it.
func chunkMarkdown(text string, size, overlap int) []string {
	var out []string
	var cur []string
	curLen := 0
	heading := ""
	headingOf := "" // heading in force at the start of cur
	flush := func() {
		body := strings.TrimSpace(strings.Join(cur, "\n"))
		if body != "" {
			if headingOf != "" && !strings.HasPrefix(body, headingOf) && len(headingOf)+1+len(body) <= size {
				body = headingOf + "\n" + body
			}
			out = append(out, body)
		}
		// Keep trailing lines, up to overlap bytes, as the next start.
		var keep []string
		n := 0
		for i := len(cur) - 1; i >= 0 && n+len(cur[i])+1 <= overlap; i-- {
			keep = append([]string{cur[i]}, keep...)
			n += len(cur[i]) + 1
		}
		cur, curLen, headingOf = keep, n, heading
	}
	for _, line := range strings.Split(text, "\n") {
		for len(line) > size {
			cut := size
			for cut > 0 && !utf8.RuneStart(line[cut]) {
				cut--
			}
			if curLen > 0 {
				flush()
				cur, curLen = nil, 0
			}
			cur = []string{line[:cut]}
			curLen = cut
			flush()
			cur, curLen = nil, 0
			line = line[cut:]
		}
		if strings.HasPrefix(line, "#") {
			if curLen > 0 {
				flush()
				cur, curLen = nil, 0 // no overlap across sections
			}
			heading = strings.TrimSpace(line)
			headingOf = heading
		}
		// Leave room for the heading the chunk will be prefixed with.
		if curLen+len(line)+1+len(headingOf)+1 > size && curLen > 0 {
			flush()
		}
		if len(cur) == 0 {
			headingOf = heading
		}
		cur = append(cur, line)
		curLen += len(line) + 1
	}
	if curLen > 0 {
		flush()
	}
	return out
}

// IndexFile (re)indexes one memory file, rel being its slash-separated path
// under root; a file that no longer exists has its chunks removed.
func (s *Store) IndexFile(ctx context.Context, root *os.Root, rel string) error {
	if !memoryFile(rel) {
		return fmt.Errorf("%w: %s is not MEMORY.md or memory/**.md", ErrInvalidChunk, rel)
	}
	text, mtime, err := readFile(root, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return s.Replace(ctx, SourceFile, rel, nil)
	}
	if err != nil {
		return fmt.Errorf("read memory file: %w", err)
	}
	var cs []Chunk
	for _, piece := range chunkMarkdown(text, s.cfg.ChunkChars, s.cfg.ChunkOverlap) {
		cs = append(cs, Chunk{ID: derivedID("f-", rel, piece), Text: piece, Time: mtime})
	}
	return s.Replace(ctx, SourceFile, rel, cs)
}

// IndexFiles brings the store's file chunks in line with the memory files
// under dir: changed and new files are indexed, removed ones dropped.
func (s *Store) IndexFiles(ctx context.Context, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open files directory: %w", err)
	}
	defer root.Close()
	files, err := scanFiles(root)
	if err != nil {
		return err
	}
	return s.syncFiles(ctx, root, files)
}

func (s *Store) syncFiles(ctx context.Context, root *os.Root, files map[string]fileStamp) error {
	indexed, err := s.List(ctx, ListOptions{Source: SourceFile})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range indexed {
		if _, ok := files[c.Path]; !ok {
			if err := s.Replace(ctx, SourceFile, c.Path, nil); err != nil {
				errs = append(errs, err)
			}
			files[c.Path] = fileStamp{} // once per path
		}
	}
	for rel, st := range files {
		if st == (fileStamp{}) {
			continue
		}
		if err := s.IndexFile(ctx, root, rel); err != nil {
			s.log.Warn("index memory file", "path", rel, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", rel, err))
		}
	}
	return errors.Join(errs...)
}

// Watch keeps the file chunks in line with the memory files under dir until
// ctx ends. It polls every WatchInterval rather than using inotify: the tree
// can be large, nested and changed through FUSE or bind mounts, and a scan of
// a few markdown files is cheap. A changed file is indexed once it has stayed
// unchanged for WatchDebounce. Errors on single files are logged, not fatal.
func (s *Store) Watch(ctx context.Context, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open files directory: %w", err)
	}
	defer root.Close()
	known, err := scanFiles(root)
	if err != nil {
		return err
	}
	initial := map[string]fileStamp{}
	for k, v := range known {
		initial[k] = v
	}
	if err := s.syncFiles(ctx, root, initial); err != nil {
		s.log.Warn("initial memory file index", "err", err)
	}
	pending := map[string]time.Time{} // path → when its last change was seen
	tick := time.NewTicker(time.Duration(s.cfg.WatchInterval))
	defer tick.Stop()
	debounce := time.Duration(s.cfg.WatchDebounce)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now, err := scanFiles(root)
		if err != nil {
			s.log.Warn("scan memory files", "err", err)
			continue
		}
		t := time.Now()
		for rel, st := range now {
			if old, ok := known[rel]; !ok || old != st {
				pending[rel] = t
			}
		}
		for rel := range known {
			if _, ok := now[rel]; !ok {
				pending[rel] = t
			}
		}
		known = now
		for rel, seen := range pending {
			if t.Sub(seen) < debounce {
				continue
			}
			delete(pending, rel)
			if err := s.IndexFile(ctx, root, rel); err != nil && ctx.Err() == nil {
				s.log.Warn("index memory file", "path", path.Clean(rel), "err", err)
			}
		}
	}
}
