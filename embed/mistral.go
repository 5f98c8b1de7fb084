package embed

import "net/http"

// mistralWire speaks Mistral's POST {base}/embeddings.
//
//	→ {"model":"mistral-embed","input":["a","b"],"output_dimension":256}
//	← {"id":"...","object":"list","data":[{"object":"embedding","embedding":[...],"index":0}],"model":"mistral-embed","usage":{...}}
type mistralWire struct{}

type mistralRequest struct {
	Model           string   `json:"model"`
	Input           []string `json:"input"`
	OutputDimension int      `json:"output_dimension,omitempty"`
}

func (mistralWire) endpoint(cfg Config) string { return cfg.BaseURL + "/embeddings" }

func (mistralWire) body(cfg Config, texts []string) any {
	return mistralRequest{Model: cfg.Model, Input: texts, OutputDimension: cfg.OutputDimensions}
}

func (mistralWire) auth(h http.Header, key APIKey) { bearer(h, key) }

func (mistralWire) parse(body []byte) ([][]float64, error) { return parseDataList(body) }
