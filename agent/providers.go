package agent

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
)

// ErrUnknownProvider means a provider name has no known endpoint and no base
// URL was given.
var ErrUnknownProvider = errors.New("unknown provider")

// Endpoint is a known model API.
type Endpoint struct {
	// Protocol is "anthropic" or "openai".
	Protocol string
	BaseURL  string
	// MaxTokensField and StreamUsage: see OpenAIConfig. Only endpoints known
	// to accept stream_options get StreamUsage; the others report no usage
	// while streaming rather than risk a 400 on every call.
	MaxTokensField string
	StreamUsage    bool
}

// Endpoints are the providers bulkhead knows by name.
var Endpoints = map[string]Endpoint{
	"anthropic":  {Protocol: "anthropic", BaseURL: "https://api.anthropic.com"},
	"openai":     {Protocol: "openai", BaseURL: "https://api.openai.com/v1", MaxTokensField: "max_completion_tokens", StreamUsage: true},
	"openrouter": {Protocol: "openai", BaseURL: "https://openrouter.ai/api/v1", MaxTokensField: "max_tokens", StreamUsage: true},
	"groq":       {Protocol: "openai", BaseURL: "https://api.groq.com/openai/v1", MaxTokensField: "max_tokens"},
	"cerebras":   {Protocol: "openai", BaseURL: "https://api.cerebras.ai/v1", MaxTokensField: "max_tokens"},
	"mistral":    {Protocol: "openai", BaseURL: "https://api.mistral.ai/v1", MaxTokensField: "max_tokens"},
	"xai":        {Protocol: "openai", BaseURL: "https://api.x.ai/v1", MaxTokensField: "max_tokens"},
	"gemini":     {Protocol: "openai", BaseURL: "https://generativelanguage.googleapis.com/v1beta/openai", MaxTokensField: "max_tokens"},
	"ollama":     {Protocol: "openai", BaseURL: "http://localhost:11434/v1", MaxTokensField: "max_tokens"},
	"vllm":       {Protocol: "openai", BaseURL: "http://localhost:8000/v1", MaxTokensField: "max_tokens", StreamUsage: true},
}

// ProviderNames lists the known provider names, sorted.
func ProviderNames() []string {
	out := make([]string, 0, len(Endpoints))
	for n := range Endpoints {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// NewProvider returns the adapter for a named provider. baseURL overrides
// the known endpoint; for a name bulkhead does not know, baseURL is required
// and the OpenAI protocol is assumed. The choice of provider and base URL is
// host configuration: nothing in a run can change it.
func NewProvider(name, baseURL string, client *http.Client) (Provider, error) {
	ep, known := Endpoints[name]
	if !known {
		if baseURL == "" {
			return nil, fmt.Errorf("%w: %q (known: %v; or give a base URL)", ErrUnknownProvider, name, ProviderNames())
		}
		ep = Endpoint{Protocol: "openai", MaxTokensField: "max_tokens"}
	}
	if baseURL != "" {
		ep.BaseURL = baseURL
	}
	if ep.Protocol == "anthropic" {
		return NewAnthropic(AnthropicConfig{Name: name, BaseURL: ep.BaseURL, HTTPClient: client}), nil
	}
	return NewOpenAI(OpenAIConfig{Name: name, BaseURL: ep.BaseURL, HTTPClient: client,
		MaxTokensField: ep.MaxTokensField, NoStreamUsage: !ep.StreamUsage}), nil
}
