package sandbox

import (
	"encoding/json"
	"testing"
)

// FuzzParseMessage feeds arbitrary packets to the decoder both ends use on
// what the other end sends (the host reads what a possibly compromised init
// writes), then the strict parameter decoding the init applies.
func FuzzParseMessage(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"exec","params":{"args":["/bin/true"],"env":[],"dir":"/tmp"}}`,
		`{"jsonrpc":"2.0","id":2,"result":{"exit_code":0}}`,
		`{"jsonrpc":"2.0","method":"started","params":{"id":3,"pid":7}}`,
		`{"jsonrpc":"2.0","id":4,"error":{"code":-32001,"message":"x","data":{"kind":"not_found"}}}`,
		`{"jsonrpc":"1.0"}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMessage(b)
		if err != nil {
			return
		}
		if m.JSONRPC != "2.0" {
			t.Fatalf("accepted jsonrpc %q", m.JSONRPC)
		}
		var ep execParams
		if strictUnmarshal(m.Params, &ep) == nil {
			if _, err := json.Marshal(ep); err != nil {
				t.Fatal(err)
			}
		}
		var er execResult
		_ = json.Unmarshal(m.Result, &er)
		var sp startedParams
		_ = json.Unmarshal(m.Params, &sp)
	})
}
