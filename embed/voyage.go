package embed

import "net/http"

// voyageWire speaks Voyage AI's POST {base}/embeddings.
//
//	→ {"input":["a","b"],"model":"voyage-3","input_type":"document","output_dimension":512}
//	← {"object":"list","data":[{"object":"embedding","embedding":[...],"index":0}],"model":"voyage-3","usage":{"total_tokens":10}}
type voyageWire struct{}

type voyageRequest struct {
	Input           []string `json:"input"`
	Model           string   `json:"model"`
	InputType       *string  `json:"input_type"`
	Truncation      bool     `json:"truncation"`
	OutputDimension int      `json:"output_dimension,omitempty"`
}

func (voyageWire) endpoint(cfg Config) string { return cfg.BaseURL + "/embeddings" }

func (voyageWire) body(cfg Config, texts []string) any {
	r := voyageRequest{Input: texts, Model: cfg.Model, Truncation: true, OutputDimension: cfg.OutputDimensions}
	if cfg.InputType != "" {
		r.InputType = &cfg.InputType
	}
	return r
}

func (voyageWire) auth(h http.Header, key APIKey) { bearer(h, key) }

func (voyageWire) parse(body []byte) ([][]float64, error) { return parseDataList(body) }
