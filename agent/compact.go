package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

var errNothingToCompact = errors.New("nothing to compact")

// estimateTokens is a cheap token estimate (4 bytes a token) of what a
// request would send. It only decides when to compact early; an overflow
// error from the model is the authority.
func estimateTokens(system string, msgs []Message) int {
	n := len(system)
	for _, m := range msgs {
		for _, p := range m.Parts {
			n += len(p.Text) + len(p.Input) + len(p.Name) + 16
		}
	}
	return n / 4
}

// pruneToolResults returns msgs with the tool results older than the last
// keepTurns assistant turns trimmed to keepBytes. msgs is not modified; only
// messages that change are copied.
func pruneToolResults(msgs []Message, keepTurns, keepBytes int) []Message {
	turns, cut := 0, -1
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == RoleAssistant {
			turns++
			if turns == keepTurns {
				cut = i
				break
			}
		}
	}
	if cut <= 0 {
		return msgs
	}
	var out []Message
	for i := 0; i < cut; i++ {
		m := msgs[i]
		changed := false
		for j, p := range m.Parts {
			if p.Type != PartToolResult || len(p.Text) <= keepBytes {
				continue
			}
			if !changed {
				if out == nil {
					out = append(make([]Message, 0, len(msgs)), msgs...)
				}
				m.Parts = append([]Part(nil), m.Parts...)
				changed = true
			}
			m.Parts[j].Text = TruncateMiddle(p.Text, keepBytes, "old tool result")
		}
		if changed {
			out[i] = m
		}
	}
	if out == nil {
		return msgs
	}
	return out
}

// splitPoint is where compaction cuts: the latest index at or before
// len(msgs)-keep where the kept tail starts cleanly — an assistant message,
// or a user message that carries no tool results (a result must stay with
// the call it answers). It returns 0 when no such cut leaves anything to
// summarize.
func splitPoint(msgs []Message, keep int) int {
	clean := func(i int) bool {
		m := msgs[i]
		if m.Role == RoleAssistant {
			return true
		}
		for _, p := range m.Parts {
			if p.Type == PartToolResult {
				return false
			}
		}
		return true
	}
	start := min(len(msgs)-keep, len(msgs)-1)
	for i := start; i > 0; i-- {
		if clean(i) {
			return i
		}
	}
	// The tail is shorter than keep or has no clean start before it: take
	// the earliest clean cut after it so that something is summarized.
	for i := max(start+1, 1); i < len(msgs); i++ {
		if clean(i) {
			return i
		}
	}
	return 0
}

const compactionSystem = `You compress the history of an agent's work so it can continue in a smaller context.
Write a faithful summary that keeps: the user's goals and constraints, decisions made, files created or changed,
commands run and the results that matter, facts learned, open questions, and what remains to be done.
Do not invent anything. Plain text, no preamble.`

// summaryPrefix starts the message that replaces compacted history.
const summaryPrefix = "[Summary of the earlier conversation, which was compacted]\n"

// renderForSummary writes messages as a plain transcript for the summarizer,
// with long tool inputs and outputs cut.
func renderForSummary(msgs []Message, max int) string {
	var b strings.Builder
	for _, m := range msgs {
		for _, p := range m.Parts {
			switch p.Type {
			case PartText:
				if p.Text != "" {
					fmt.Fprintf(&b, "[%s]: %s\n", m.Role, p.Text)
				}
			case PartToolUse:
				fmt.Fprintf(&b, "[assistant called %s]: %s\n", p.Name, TruncateMiddle(string(p.Input), 600, "arguments"))
			case PartToolResult:
				status := "result"
				if p.IsError {
					status = "error"
				}
				fmt.Fprintf(&b, "[tool %s]: %s\n", status, TruncateMiddle(p.Text, 1500, "tool output"))
			}
		}
	}
	return TruncateMiddle(b.String(), max, "transcript")
}

// compact replaces the older part of the conversation with a summary made by
// the model, after giving it to the memory flusher. If the model cannot
// summarize, the older part is replaced by a note saying it was dropped, so
// the run can go on either way.
func (st *runState) compact(ctx context.Context) error {
	cfg := &st.r.cfg
	cut := splitPoint(st.msgs, cfg.Compaction.KeepRecent)
	if cut == 0 {
		return errNothingToCompact
	}
	head := st.msgs[:cut]
	if cfg.Flusher != nil {
		if err := cfg.Flusher.FlushBeforeCompaction(ctx, st.id, head); err != nil {
			return fmt.Errorf("flush memory before compaction: %w", err)
		}
	}
	budget := 200 << 10
	if st.window > 0 {
		budget = min(budget, st.window*2) // about half the window in tokens
	}
	req := &Request{
		System:    compactionSystem,
		Messages:  []Message{UserText(renderForSummary(head, budget) + "\nSummarize the conversation above.")},
		MaxTokens: 2048,
	}
	summary := ""
	resp, cand, err := cfg.Model.Stream(ctx, req, nil)
	if err == nil {
		summary = strings.TrimSpace(resp.Message.Text())
		st.res.Usage.Add(resp.Usage)
		u := st.res.UsageByModel[cand.ID()]
		u.Add(resp.Usage)
		st.res.UsageByModel[cand.ID()] = u
	} else if ctx.Err() != nil {
		return err
	}
	if summary == "" {
		cfg.Logger.Warn("compaction summary failed; dropping older messages", "run", st.id, "messages", cut, "err", err)
		summary = fmt.Sprintf("(%d earlier messages were dropped to fit the context window; no summary could be made)", cut)
	}
	sm := UserText(summaryPrefix + summary)
	rest := st.msgs[cut:]
	replaced := cut
	if len(rest) > 0 && rest[0].Role == RoleUser {
		// Keep roles alternating: the summary and the next user message
		// become one user message.
		sm.Parts = append(sm.Parts, rest[0].Parts...)
		rest = rest[1:]
		replaced++
	}
	msgs := make([]Message, 0, len(rest)+1)
	msgs = append(msgs, sm)
	msgs = append(msgs, rest...)
	st.msgs = msgs
	st.res.Compactions++
	if err := st.journal(ctx, Entry{Kind: EntryCompaction, Message: &msgs[0],
		Data: jsonData(map[string]any{"replaced": replaced, "summary": summary})}); err != nil {
		return err
	}
	st.emit(Event{Kind: EventCompaction, RunID: st.id, Text: summary})
	return nil
}
