package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The host and a sandbox's init speak JSON-RPC 2.0, one message per
// SOCK_SEQPACKET packet on a dedicated socket pair (fd 3 in the init). File
// descriptors (a command's stdin/stdout/stderr, a terminal's master side)
// travel as SCM_RIGHTS alongside the message that names them.
//
// host → init: "setup" (once, first), "exec", "kill", "ping".
// init → host: responses; the notification "started" (a TTY command's master
// fd attached) before an exec's response.
//
// The init treats every message as untrusted input (size cap, rate limit,
// strict decoding), and so does the host: the init runs inside the sandbox.

type rpcMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      *uint64         `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

type rpcError struct {
	Code    int       `json:"code"`
	Message string    `json:"message"`
	Data    *rpcErrEx `json:"data,omitempty"`
}

type rpcErrEx struct {
	Layer string `json:"layer,omitempty"` // setup: the isolation layer that failed
	Kind  string `json:"kind,omitempty"`  // exec: not_found, not_executable, bad_dir, rate_limited, too_large
}

// JSON-RPC 2.0 error codes, and ours (-32000..-32099 are implementation-defined).
const (
	codeParse          = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
	codeSetup          = -32000
	codeExec           = -32001
	codeRateLimited    = -32002
)

const (
	kindNotFound      = "not_found"
	kindNotExecutable = "not_executable"
	kindBadDir        = "bad_dir"
)

type setupParams struct {
	Hostname string `json:"hostname"`
	// Workspace and Binds travel as O_PATH descriptors opened by the host, in
	// this order, so the sandbox needs no search permission on the host path.
	Workspace  bool   `json:"workspace,omitempty"`
	Binds      []Bind `json:"binds,omitempty"`
	TmpBytes   int64  `json:"tmp_bytes"`
	NoFile     uint64 `json:"nofile"`
	NProc      uint64 `json:"nproc"`
	FileBytes  uint64 `json:"file_bytes"`
	ExpectUID  uint32 `json:"expect_uid"` // host uid sandbox root must map to (checked from inside)
	RatePerSec int    `json:"rate_per_sec"`
	Burst      int    `json:"burst"`
	// CgroupFDs is how many cgroup.procs descriptors follow the bind
	// sources (v1): the init writes itself into each before anything else.
	CgroupFDs int `json:"cgroup_fds,omitempty"`
}

type execParams struct {
	Args   []string `json:"args"`
	Env    []string `json:"env"`
	Dir    string   `json:"dir"`
	TTY    bool     `json:"tty,omitempty"`
	Rows   uint16   `json:"rows,omitempty"`
	Cols   uint16   `json:"cols,omitempty"`
	Stdin  bool     `json:"stdin,omitempty"` // an fd is attached for each true field, in this order
	Stdout bool     `json:"stdout,omitempty"`
	Stderr bool     `json:"stderr,omitempty"`
}

type execResult struct {
	ExitCode int `json:"exit_code"`
	Signal   int `json:"signal,omitempty"`
}

type startedParams struct {
	ID  uint64 `json:"id"`
	PID int    `json:"pid"`
}

var errBadMessage = errors.New("malformed message")

// parseMessage decodes one received packet; anything but a JSON-RPC 2.0
// object is errBadMessage.
func parseMessage(b []byte) (*rpcMessage, error) {
	var m rpcMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadMessage, err)
	}
	if m.JSONRPC != "2.0" {
		return nil, fmt.Errorf("%w: jsonrpc must be \"2.0\"", errBadMessage)
	}
	return &m, nil
}

// strictUnmarshal decodes params, refusing unknown fields.
func strictUnmarshal(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
