// Package llmtest is a loopback HTTP server that speaks the two model wire
// protocols the agent uses — the Anthropic Messages API (POST /v1/messages)
// and the OpenAI Chat Completions API (POST /v1/chat/completions) — both with
// and without server-sent-event streaming. It is a test double, not a
// provider: every reply is scripted by the test.
//
// Terms:
//
//   - A Reply is what the server answers to one request: text and tool-call
//     blocks, an error (rendered in each provider's own error JSON and status
//     code), and knobs for how the stream is delivered (delta size, write size
//     so chunk boundaries fall anywhere, a delay per event, a dropped
//     connection after N events).
//   - Replies are consumed in order from one queue shared by both protocols;
//     when the queue is empty the Handler function (if any) decides, else the
//     server answers with an error the client will classify as a server error.
//   - Every request that reaches the handler is recorded (protocol, key,
//     headers, body, model, system prompt, messages, tool names) so tests can
//     assert on what the client sent.
//
// Authentication is checked like the real services do: x-api-key plus
// anthropic-version for Anthropic, "Authorization: Bearer" for OpenAI. A
// request with a key outside the accepted set gets the provider's 401 without
// consuming a scripted reply, so key-rotation tests can script only the
// requests that pass authentication.
//
// The server also validates the conversation the way the real APIs do: every
// tool call in an assistant message must be answered by a tool result in the
// next message(s), or the request fails with the provider's 400 text. That
// makes transcript bugs in the client visible in tests.
//
// All methods are safe for concurrent use.
package llmtest
