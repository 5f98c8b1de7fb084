package board

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Lease is the right to run one ticket of a project. There is one lease
// record per project; its Token only ever grows, and is the fencing token
// every write of the run must present.
type Lease struct {
	Project  string    `json:"project"`
	Ticket   int64     `json:"ticket"`
	Holder   string    `json:"holder"`
	Token    int64     `json:"token"`
	Claimed  time.Time `json:"claimed"`
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released"`
}

// Fence identifies a claimed run; writes made for it are checked against
// the project's lease in the same transaction.
type Fence struct {
	Project string
	Ticket  int64
	Token   int64
	Holder  string
}

func (l *Lease) live(now time.Time) bool { return l != nil && !l.Released && now.Before(l.Expires) }

func getLease(txn *badger.Txn, project string) (*Lease, error) {
	var l Lease
	found, err := getJSON(txn, leaseKey(project), &l)
	if err != nil || !found {
		return nil, err
	}
	return &l, nil
}

// checkFence fails with ErrLeaseLost unless f still holds its lease.
func (b *Board) checkFence(txn *badger.Txn, f *Fence) (*Lease, error) {
	l, err := getLease(txn, f.Project)
	if err != nil {
		return nil, err
	}
	if l == nil || l.Token != f.Token || l.Ticket != f.Ticket || !l.live(b.opts.Now()) {
		return nil, fmt.Errorf("%w: %s#%d run %d", ErrLeaseLost, f.Project, f.Ticket, f.Token)
	}
	return l, nil
}

// claim takes project's lease for ticket id in one transaction: the lease
// must be free (released or expired) and the ticket actionable (ignoring
// the failure backoff when force is set). A lease that expired without being
// released means a run died; that is recorded in its ticket's thread.
// On success the ticket is marked as seen through its newest comment and a
// backlog ticket moves to in progress.
func (b *Board) claim(project string, id int64, holder string, force bool) (*Fence, *Ticket, error) {
	var f *Fence
	var t *Ticket
	err := b.update(func(txn *badger.Txn) error {
		now := b.opts.Now().UTC()
		l, err := getLease(txn, project)
		if err != nil {
			return err
		}
		if l.live(now) {
			return fmt.Errorf("%w: ticket %d is running (run %d by %s)", ErrLeased, l.Ticket, l.Token, l.Holder)
		}
		if t, err = getTicket(txn, project, id); err != nil {
			return err
		}
		probe := *t
		if force {
			probe.NotBefore = time.Time{}
		}
		if !probe.actionable(now) {
			return fmt.Errorf("%w: %s#%d is %s", ErrNotActionable, project, id, t.State)
		}
		var token int64 = 1
		if l != nil {
			token = l.Token + 1
			if !l.Released {
				if err := b.noteExpired(txn, l, t); err != nil {
					return err
				}
			}
		}
		t.Runs++
		t.LastRunToken, t.LastRunAt = token, now
		t.Returned = false
		t.Branch = BranchName(t.ID)
		msg := fmt.Sprintf("Run %d started (lease %d, %s).", t.Runs, token, holder)
		if t.State == Backlog {
			t.State = InProgress
			msg += " Moved from backlog to in_progress."
		}
		if err := b.addComment(txn, t, &Comment{Kind: System, Author: "heartbeat", Body: msg}); err != nil {
			return err
		}
		t.SeenThrough = t.Comments
		if err := putJSON(txn, ticketKey(project, id), t); err != nil {
			return err
		}
		nl := &Lease{Project: project, Ticket: id, Holder: holder, Token: token, Claimed: now, Expires: now.Add(b.opts.LeaseTTL)}
		f = &Fence{Project: project, Ticket: id, Token: token, Holder: holder}
		return putJSON(txn, leaseKey(project), nl)
	})
	if err != nil {
		return nil, nil, err
	}
	return f, t, nil
}

// noteExpired writes a system comment on the ticket whose run lost its
// lease without releasing it. cur is the ticket being claimed now (it may
// be the same one, in which case the comment goes into cur directly).
func (b *Board) noteExpired(txn *badger.Txn, l *Lease, cur *Ticket) error {
	msg := fmt.Sprintf("Run %d (%s) stopped without finishing: its lease expired at %s. Work it committed or posted is kept; the ticket is picked up again.",
		l.Token, l.Holder, l.Expires.UTC().Format(time.RFC3339))
	if l.Ticket == cur.ID {
		return b.addComment(txn, cur, &Comment{Kind: System, Author: "heartbeat", Body: msg})
	}
	old, err := getTicket(txn, l.Project, l.Ticket)
	if err != nil {
		return nil // the ticket is gone; nothing to annotate
	}
	if err := b.addComment(txn, old, &Comment{Kind: System, Author: "heartbeat", Body: msg}); err != nil {
		return err
	}
	return putJSON(txn, ticketKey(old.Project, old.ID), old)
}

// renew extends f's lease by the TTL.
func (b *Board) renew(f *Fence) error {
	return b.update(func(txn *badger.Txn) error {
		l, err := b.checkFence(txn, f)
		if err != nil {
			return err
		}
		l.Expires = b.opts.Now().UTC().Add(b.opts.LeaseTTL)
		return putJSON(txn, leaseKey(f.Project), l)
	})
}

// releaseTxn marks f's lease released inside txn (after checkFence).
func releaseTxn(txn *badger.Txn, l *Lease) error {
	l.Released = true
	return putJSON(txn, leaseKey(l.Project), l)
}

// Leases returns every project's lease record.
func (b *Board) Leases() ([]*Lease, error) {
	var out []*Lease
	err := b.db.View(func(txn *badger.Txn) error {
		return scan(txn, []byte(prefixLease), func(l *Lease) error { out = append(out, l); return nil })
	})
	return out, err
}
