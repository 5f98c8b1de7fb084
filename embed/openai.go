package embed

import (
	"fmt"
	"net/http"
)

// openAIWire speaks POST {base}/embeddings as OpenAI documents it, which
// Ollama, vLLM, llama.cpp and OpenRouter also serve.
//
//	→ {"model":"text-embedding-3-small","input":["a","b"],"encoding_format":"float","dimensions":512}
//	← {"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,...]}],"model":"...","usage":{...}}
type openAIWire struct{}

type openAIRequest struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	EncodingFormat string   `json:"encoding_format"`
	Dimensions     int      `json:"dimensions,omitempty"`
}

func (openAIWire) endpoint(cfg Config) string { return cfg.BaseURL + "/embeddings" }

func (openAIWire) body(cfg Config, texts []string) any {
	return openAIRequest{Model: cfg.Model, Input: texts, EncodingFormat: "float", Dimensions: cfg.OutputDimensions}
}

func (openAIWire) auth(h http.Header, key APIKey) { bearer(h, key) }

func (openAIWire) parse(body []byte) ([][]float64, error) { return parseDataList(body) }

// dataList is the answer shape OpenAI, Voyage and Mistral share.
type dataList struct {
	Data *[]struct {
		Index     *int      `json:"index"`
		Embedding []float64 `json:"embedding"`
	} `json:"data"`
}

// parseDataList places each item by its index; without indices (some
// compatible servers omit them) the order is the input order. Missing,
// repeated or out-of-range indices are malformed.
func parseDataList(body []byte) ([][]float64, error) {
	var v dataList
	if err := decodeStrict(body, &v); err != nil {
		return nil, err
	}
	if v.Data == nil {
		return nil, fmt.Errorf("%w: no \"data\" list", ErrMalformedResponse)
	}
	items := *v.Data
	out := make([][]float64, len(items))
	withIndex := 0
	for _, it := range items {
		if it.Index != nil {
			withIndex++
		}
	}
	switch withIndex {
	case 0:
		for i, it := range items {
			out[i] = it.Embedding
		}
	case len(items):
		for _, it := range items {
			i := *it.Index
			if i < 0 || i >= len(items) {
				return nil, fmt.Errorf("%w: index %d outside 0..%d", ErrMalformedResponse, i, len(items)-1)
			}
			if out[i] != nil {
				return nil, fmt.Errorf("%w: index %d repeated", ErrMalformedResponse, i)
			}
			if it.Embedding == nil {
				return nil, fmt.Errorf("%w: item %d has no embedding", ErrMalformedResponse, i)
			}
			out[i] = it.Embedding
		}
	default:
		return nil, fmt.Errorf("%w: %d of %d items lack an index", ErrMalformedResponse, len(items)-withIndex, len(items))
	}
	for i, e := range out {
		if e == nil {
			return nil, fmt.Errorf("%w: item %d has no embedding", ErrMalformedResponse, i)
		}
	}
	return out, nil
}
