// Package board is the ticket board of a project: projects (a workspace
// bound to a git repository and a persona), personas (named sets of
// bootstrap files), tickets, comments, and the heartbeat that runs pending
// ticket work through an agent.
//
// Terms:
//
//   - A project is a workspace whose files hold a clone of a git repository.
//     Its id is the workspace id.
//   - A ticket is a work item of one project, numbered from 1 per project. It
//     moves backlog → in_progress → verification → done; a human may return
//     it from verification to in_progress with a comment saying why.
//   - A comment is the only channel between the agent and humans. Comments
//     are numbered per ticket and never edited.
//   - A lease is the right to run one ticket of a project. There is at most
//     one lease per project, so a project runs one ticket at a time. A lease
//     is claimed in one Badger transaction that also checks the ticket is
//     still actionable; it has an expiry, is renewed while the run lasts, and
//     carries a fencing token that every write made on behalf of the run
//     must present, so a run whose lease expired cannot write anything.
//   - The heartbeat finds actionable tickets, scores them, claims leases and
//     runs them through a TicketRunner, until nothing is left; Dispatch runs
//     one named ticket now, under the same lease rules.
//
// Storage: everything lives in the node's control database under the
// prefixes board/, persona/ and lease/. Git operations on one repository
// are serialised by a lock per directory; the git binary does the work.
//
// Errors: sentinels in errors.go; messages name what the caller sent and are
// safe to show to users.
package board
