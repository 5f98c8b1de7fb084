package agent

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"
)

func TestClassifyBodies(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   Class
	}{
		{400, `{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}`, ClassContextOverflow},
		{400, `{"type":"error","error":{"type":"invalid_request_error","message":"input length and ` + "`max_tokens`" + ` exceed context limit: 197000 + 8192 > 200000"}}`, ClassContextOverflow},
		{413, `{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}`, ClassContextOverflow},
		{400, `{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`, ClassContextOverflow},
		{400, `{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}`, ClassBilling},
		{402, `{"type":"error","error":{"type":"billing_error","message":"payment"}}`, ClassBilling},
		{429, `{"type":"error","error":{"type":"rate_limit_error","message":"spend","details":{"error_code":"enforced_spend_limit_reached"}}}`, ClassBilling},
		{429, `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`, ClassBilling},
		{429, `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`, ClassRateLimit},
		{429, `{"error":{"message":"Rate limit reached","type":"tokens","code":"rate_limit_exceeded"}}`, ClassRateLimit},
		{401, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`, ClassAuth},
		{401, `{"error":{"message":"The API key has been revoked.","type":"invalid_request_error","code":"invalid_api_key"}}`, ClassAuthPermanent},
		{403, `{"type":"error","error":{"type":"permission_error","message":"no"}}`, ClassAuthPermanent},
		{404, `{"type":"error","error":{"type":"not_found_error","message":"model: claude-nope"}}`, ClassModelNotFound},
		{404, `{"error":"model 'llama9' not found, try pulling it first"}`, ClassModelNotFound},
		{400, `{"error":{"message":"The model ` + "`x`" + ` does not exist","code":"model_not_found"}}`, ClassModelNotFound},
		{529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, ClassOverloaded},
		{503, `<html>Service Unavailable</html>`, ClassOverloaded},
		{500, `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`, ClassServerError},
		{502, `bad gateway`, ClassServerError},
		{504, ``, ClassTimeout},
		{408, ``, ClassTimeout},
		{400, `{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}`, ClassFormat},
		{422, `{"message":"unprocessable"}`, ClassFormat},
	}
	for _, c := range cases {
		e := &APIError{Provider: "p", Status: c.status}
		e.fillFromBody([]byte(c.body), Secret{})
		if got := Classify(fmt.Errorf("wrapped: %w", e)); got != c.want {
			t.Errorf("%d %s: %s, want %s", c.status, c.body, got, c.want)
		}
	}
}

func TestClassifyOther(t *testing.T) {
	cases := []struct {
		err  error
		want Class
	}{
		{context.Canceled, ClassCanceled},
		{context.DeadlineExceeded, ClassTimeout},
		{&TransportError{Op: "read stream", Err: io.ErrUnexpectedEOF}, ClassTimeout},
		{&TransportError{Op: "send", Err: context.Canceled}, ClassCanceled},
		{&ChainError{Attempts: []CandidateError{{Class: ClassBilling}, {Class: ClassOverloaded}}}, ClassOverloaded},
		{io.EOF, ClassUnknown},
	}
	for _, c := range cases {
		if got := Classify(c.err); got != c.want {
			t.Errorf("%v: %s, want %s", c.err, got, c.want)
		}
	}
}

func TestKeysFromEnv(t *testing.T) {
	env := []string{
		"OPENROUTER_API_KEY_10=k10",
		"OPENROUTER_API_KEYS= a , b,,a",
		"OPENROUTER_API_KEY_2=k2",
		"OPENROUTER_API_KEY=single",
		"OPENROUTER_API_KEYX=ignored",
		"OPENAI_API_KEY=other",
	}
	keys := KeysFromEnv("openrouter", env)
	var got []string
	for _, k := range NewKeyPool("openrouter", keys...).keys {
		got = append(got, k.secret.Reveal())
	}
	want := []string{"a", "b", "single", "k2", "k10"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
}

func TestKeyPoolRotation(t *testing.T) {
	now := time.Unix(1000, 0)
	a, b := NewSecret("a"), NewSecret("b")
	p := NewKeyPool("x", a, b)
	k1, _, _ := p.Acquire(now)
	k2, _, _ := p.Acquire(now)
	if k1.Equal(k2) {
		t.Fatal("no round robin")
	}
	p.CoolDown(a, now.Add(10*time.Second))
	for range 3 {
		k, wait, err := p.Acquire(now)
		if err != nil || wait != 0 || !k.Equal(b) {
			t.Fatalf("got %v wait %v err %v", k.Reveal(), wait, err)
		}
	}
	p.CoolDown(b, now.Add(20*time.Second))
	k, wait, err := p.Acquire(now)
	if err != nil || !k.Equal(a) || wait != 10*time.Second {
		t.Fatalf("all cooling: %v %v %v", k.Reveal(), wait, err)
	}
	p.Disable(a)
	p.Disable(b)
	if _, _, err := p.Acquire(now.Add(time.Hour)); err == nil {
		t.Fatal("disabled keys handed out")
	}
}
