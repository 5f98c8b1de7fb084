package board

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/workspace"
)

// CreateTicket opens a ticket in the backlog of project.
func (b *Board) CreateTicket(ctx context.Context, project string, n NewTicket) (*Ticket, error) {
	if err := workspace.ValidateID(project); err != nil {
		return nil, err
	}
	if err := n.validate(); err != nil {
		return nil, err
	}
	if n.Assignee != "" {
		if _, err := b.Persona(n.Assignee); err != nil {
			return nil, err
		}
	}
	now := b.opts.Now().UTC()
	t := &Ticket{
		Project: project, Kind: n.Kind, Title: n.Title, Description: n.Description, Criteria: n.Criteria,
		Priority: n.Priority, Assignee: n.Assignee, State: Backlog, Author: n.Author,
		CreatedAt: now, UpdatedAt: now,
	}
	err := b.update(func(txn *badger.Txn) error {
		if found, err := getJSON(txn, projectKey(project), &Project{}); err != nil {
			return err
		} else if !found {
			return fmt.Errorf("%w: %q", ErrProjectNotFound, project)
		}
		next := int64(1)
		item, err := txn.Get(seqKey(project))
		if err == nil {
			if err := item.Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("corrupt ticket counter of %s", project)
				}
				next = int64(binary.BigEndian.Uint64(v)) + 1
				return nil
			}); err != nil {
				return err
			}
		} else if err != badger.ErrKeyNotFound {
			return err
		}
		t.ID = next
		if err := txn.Set(seqKey(project), binary.BigEndian.AppendUint64(nil, uint64(next))); err != nil {
			return err
		}
		return putJSON(txn, ticketKey(project, t.ID), t)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

func getTicket(txn *badger.Txn, project string, id int64) (*Ticket, error) {
	var t Ticket
	found, err := getJSON(txn, ticketKey(project, id), &t)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %s#%d", ErrTicketNotFound, project, id)
	}
	return &t, nil
}

// Ticket returns one ticket.
func (b *Board) Ticket(ctx context.Context, project string, id int64) (*Ticket, error) {
	if err := workspace.ValidateID(project); err != nil {
		return nil, err
	}
	var t *Ticket
	err := b.db.View(func(txn *badger.Txn) error {
		var err error
		t, err = getTicket(txn, project, id)
		return err
	})
	return t, err
}

// Tickets lists project's tickets by id. It fails with ErrProjectNotFound
// for a project that does not exist.
func (b *Board) Tickets(ctx context.Context, project string) ([]*Ticket, error) {
	if err := workspace.ValidateID(project); err != nil {
		return nil, err
	}
	out := []*Ticket{}
	err := b.db.View(func(txn *badger.Txn) error {
		if found, err := getJSON(txn, projectKey(project), &Project{}); err != nil {
			return err
		} else if !found {
			return fmt.Errorf("%w: %q", ErrProjectNotFound, project)
		}
		return scan(txn, ticketPrefix(project), func(t *Ticket) error { out = append(out, t); return nil })
	})
	return out, err
}

// Comments returns a ticket's thread in order.
func (b *Board) Comments(ctx context.Context, project string, id int64) ([]*Comment, error) {
	if err := workspace.ValidateID(project); err != nil {
		return nil, err
	}
	out := []*Comment{}
	err := b.db.View(func(txn *badger.Txn) error {
		if _, err := getTicket(txn, project, id); err != nil {
			return err
		}
		return scan(txn, commentPrefix(project, id), func(c *Comment) error { out = append(out, c); return nil })
	})
	return out, err
}

// addComment appends c to t's thread inside txn and updates t (the caller
// stores t).
func (b *Board) addComment(txn *badger.Txn, t *Ticket, c *Comment) error {
	t.Comments++
	c.Seq, c.Ticket = t.Comments, t.ID
	if c.Time.IsZero() {
		c.Time = b.opts.Now().UTC()
	}
	if c.Kind == Human {
		t.LastHuman = c.Seq
	}
	t.UpdatedAt = c.Time
	return putJSON(txn, commentKey(t.Project, t.ID, c.Seq), c)
}

func validComment(body, anchor string) error {
	if strings.TrimSpace(body) == "" {
		return fmt.Errorf("%w: comment is empty", ErrInvalid)
	}
	if len(body) > MaxText {
		return fmt.Errorf("%w: comment longer than %d bytes", ErrInvalid, MaxText)
	}
	if len(anchor) > 512 || strings.ContainsAny(anchor, "\r\n") {
		return fmt.Errorf("%w: anchor must be one line of at most 512 bytes", ErrInvalid)
	}
	return nil
}

// Comment adds a human comment to a ticket.
func (b *Board) Comment(ctx context.Context, project string, id int64, author, body, anchor string) (*Comment, error) {
	if err := workspace.ValidateID(project); err != nil {
		return nil, err
	}
	if err := validComment(body, anchor); err != nil {
		return nil, err
	}
	if author == "" {
		author = "human"
	}
	var c *Comment
	err := b.update(func(txn *badger.Txn) error {
		t, err := getTicket(txn, project, id)
		if err != nil {
			return err
		}
		c = &Comment{Kind: Human, Author: author, Body: body, Anchor: anchor}
		if err := b.addComment(txn, t, c); err != nil {
			return err
		}
		return putJSON(txn, ticketKey(project, id), t)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Move changes a ticket's state as a human. Returning a ticket from
// verification (or reopening a done one) needs reason, which is posted as
// the human's comment; the agent picks the ticket up again.
func (b *Board) Move(ctx context.Context, project string, id int64, to State, author, reason string) (*Ticket, error) {
	if err := workspace.ValidateID(project); err != nil {
		return nil, err
	}
	if _, err := ParseState(string(to)); err != nil {
		return nil, err
	}
	if strings.TrimSpace(reason) != "" {
		if err := validComment(reason, ""); err != nil {
			return nil, err
		}
	}
	if author == "" {
		author = "human"
	}
	var t *Ticket
	err := b.update(func(txn *badger.Txn) error {
		var err error
		if t, err = getTicket(txn, project, id); err != nil {
			return err
		}
		if err := checkMove(Human, t.State, to, reason); err != nil {
			return err
		}
		return b.moveTxn(txn, t, to, Human, author, reason)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// moveTxn moves t (already checked) and records the move in the thread.
func (b *Board) moveTxn(txn *badger.Txn, t *Ticket, to State, kind, author, reason string) error {
	from := t.State
	if strings.TrimSpace(reason) != "" {
		if err := b.addComment(txn, t, &Comment{Kind: kind, Author: author, Body: reason}); err != nil {
			return err
		}
	}
	if err := b.addComment(txn, t, &Comment{Kind: System, Author: "board", Body: fmt.Sprintf("%s moved the ticket from %s to %s.", author, from, to)}); err != nil {
		return err
	}
	t.State = to
	if from == Verification && to == InProgress || from == Done && to == InProgress {
		t.Returned = true
		t.NotBefore = time.Time{} // a human asked for it: no backoff
		t.Failures = 0
	}
	return putJSON(txn, ticketKey(t.Project, t.ID), t)
}
