package memory

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Turn is one message of a session transcript.
type Turn struct {
	// Seq is the turn's stable position in its session; indexing the same
	// (session, Seq) again replaces the chunk.
	Seq     int
	Speaker string
	Text    string
	Time    time.Time
}

// TranscriptHook is what the agent calls to make session transcripts
// searchable across sessions.
type TranscriptHook interface {
	IndexTranscript(ctx context.Context, session string, turns []Turn) ([]string, error)
}

var _ TranscriptHook = (*Store)(nil)

// IndexTranscript stores each turn of session as one chunk (source
// "session", path = the session key), text "Speaker: text", and returns the
// chunk ids in turn order. Blank turns are skipped (their id is ""). Each
// chunk's Context is the turns before and after it in this call, so a caller
// feeding a live session should include the previous call's last turn again:
// it is replaced (same session and Seq) and gains its following turn.
func (s *Store) IndexTranscript(ctx context.Context, session string, turns []Turn) ([]string, error) {
	if session == "" {
		return nil, fmt.Errorf("index transcript: %w: empty session key", ErrInvalidChunk)
	}
	ids := make([]string, len(turns))
	var cs []Chunk
	for i, t := range turns {
		text := strings.TrimSpace(t.Text)
		if text == "" {
			continue
		}
		if t.Speaker != "" {
			text = t.Speaker + ": " + text
		}
		ids[i] = derivedID("s-", session, strconv.Itoa(t.Seq))
		cs = append(cs, Chunk{ID: ids[i], Text: text, Source: SourceSession, Path: session, Time: t.Time})
	}
	// A turn's context is its neighbours: a reply is often found by the
	// question it answers, a statement by the reaction to it.
	for i := range cs {
		var around []string
		if i > 0 {
			around = append(around, cs[i-1].Text)
		}
		if i+1 < len(cs) {
			around = append(around, cs[i+1].Text)
		}
		cs[i].Context = strings.Join(around, "\n")
	}
	if _, err := s.Add(ctx, cs); err != nil {
		return nil, fmt.Errorf("index transcript %s: %w", session, err)
	}
	return ids, nil
}
