package workspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/agent"
	"github.com/bulkhead-dev/bulkhead/kv"
)

// Session kinds. A session key is "bulkhead:{workspace}:{kind}:{id}".
const (
	KindSession   = "session"   // a conversation started by a person or an API client
	KindTicket    = "ticket"    // work on a board ticket
	KindSubagent  = "subagent"  // a subagent's own conversation
	KindHeartbeat = "heartbeat" // scheduled work
)

// SessionKinds lists the valid kinds.
var SessionKinds = []string{KindSession, KindTicket, KindSubagent, KindHeartbeat}

// SessionIDRule is the pattern a session id must match.
const SessionIDRule = `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`

var sessionIDRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(SessionIDRule) })

const prefixSession = "session/"

// SessionRef names a session within a workspace.
type SessionRef struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// ParseSessionRef reads "id" (kind session) or "kind:id" and validates it.
func ParseSessionRef(s string) (SessionRef, error) {
	ref := SessionRef{Kind: KindSession, ID: s}
	if k, id, ok := strings.Cut(s, ":"); ok {
		ref = SessionRef{Kind: k, ID: id}
	}
	return ref, ref.Validate()
}

// Validate checks the kind and the id.
func (r SessionRef) Validate() error {
	known := false
	for _, k := range SessionKinds {
		known = known || r.Kind == k
	}
	if !known {
		return fmt.Errorf("%w: kind %q is not one of %v", ErrInvalidSession, r.Kind, SessionKinds)
	}
	if !sessionIDRE().MatchString(r.ID) || strings.Contains(r.ID, "..") {
		return fmt.Errorf("%w: id %q must match %s", ErrInvalidSession, r.ID, SessionIDRule)
	}
	return nil
}

// String is "kind:id".
func (r SessionRef) String() string { return r.Kind + ":" + r.ID }

// SessionKey is the session's node-wide key, bulkhead:{workspace}:{kind}:{id}.
func SessionKey(workspace string, r SessionRef) string {
	return "bulkhead:" + workspace + ":" + r.Kind + ":" + r.ID
}

func sessionDBKey(r SessionRef) []byte { return []byte(prefixSession + r.Kind + ":" + r.ID) }

// Session is a conversation kept in the workspace's database: its transcript
// and what its runs used.
type Session struct {
	Key       string    `json:"key"`
	Kind      string    `json:"kind"`
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Runs are the run ids in the order they started.
	Runs     []string    `json:"runs"`
	Usage    agent.Usage `json:"usage"`
	Messages int         `json:"messages"`
	// Transcript is left out of listings.
	Transcript []agent.Message `json:"transcript,omitempty"`
}

func getSession(txn *badger.Txn, r SessionRef) (*Session, error) {
	item, err := txn.Get(sessionDBKey(r))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrSessionNotFound, r)
	}
	if err != nil {
		return nil, err
	}
	var s Session
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &s) }); err != nil {
		return nil, fmt.Errorf("decode session %s: %w", r, err)
	}
	return &s, nil
}

func putSession(txn *badger.Txn, s *Session) error {
	s.Messages = len(s.Transcript)
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return txn.Set(sessionDBKey(SessionRef{Kind: s.Kind, ID: s.ID}), b)
}

// GetSession returns a session with its transcript.
func (s *Service) GetSession(ctx context.Context, ws string, ref SessionRef) (*Session, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	db, release, err := s.agentDB(ctx, ws)
	if err != nil {
		return nil, err
	}
	defer release()
	var out *Session
	err = db.View(func(txn *badger.Txn) error {
		out, err = getSession(txn, ref)
		return err
	})
	return out, err
}

// ListSessions returns a workspace's sessions without transcripts, most
// recently updated first.
func (s *Service) ListSessions(ctx context.Context, ws string) ([]Session, error) {
	db, release, err := s.agentDB(ctx, ws)
	if err != nil {
		return nil, err
	}
	defer release()
	out := []Session{}
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixSession), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var ss Session
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &ss) }); err != nil {
				return fmt.Errorf("decode session %s: %w", it.Item().Key(), err)
			}
			ss.Transcript = nil
			out = append(out, ss)
		}
		return nil
	})
	sortSessions(out)
	return out, err
}

func sortSessions(ss []Session) {
	sort.SliceStable(ss, func(i, j int) bool { return ss[i].UpdatedAt.After(ss[j].UpdatedAt) })
}

// DeleteSession removes a session's record (its runs and journals stay, for
// the audit trail). A session with a run in progress is refused.
func (s *Service) DeleteSession(ctx context.Context, ws string, ref SessionRef) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	if s.ag.sessionBusy(ws, ref) {
		return fmt.Errorf("%w: %s", ErrSessionBusy, ref)
	}
	db, release, err := s.agentDB(ctx, ws)
	if err != nil {
		return err
	}
	defer release()
	return kv.UpdateSync(db, func(txn *badger.Txn) error {
		if _, err := getSession(txn, ref); err != nil {
			return err
		}
		return txn.Delete(sessionDBKey(ref))
	})
}
