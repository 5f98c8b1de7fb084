package embed

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// geminiWire speaks the Gemini API's batchEmbedContents.
//
//	POST {base}/models/{model}:batchEmbedContents   (x-goog-api-key: KEY)
//	→ {"requests":[{"model":"models/text-embedding-004","content":{"parts":[{"text":"a"}]},
//	                "taskType":"RETRIEVAL_DOCUMENT","outputDimensionality":256}, ...]}
//	← {"embeddings":[{"values":[0.1,...]}, ...]}   (in request order)
type geminiWire struct{}

type geminiPart struct {
	Text string `json:"text"`
}

type geminiContent struct {
	Parts []geminiPart `json:"parts"`
}

type geminiEmbedRequest struct {
	Model                string        `json:"model"`
	Content              geminiContent `json:"content"`
	TaskType             string        `json:"taskType,omitempty"`
	OutputDimensionality int           `json:"outputDimensionality,omitempty"`
}

type geminiBatchRequest struct {
	Requests []geminiEmbedRequest `json:"requests"`
}

func geminiModel(m string) string { return "models/" + strings.TrimPrefix(m, "models/") }

func (geminiWire) endpoint(cfg Config) string {
	return cfg.BaseURL + "/" + (&url.URL{Path: geminiModel(cfg.Model)}).EscapedPath() + ":batchEmbedContents"
}

func (geminiWire) body(cfg Config, texts []string) any {
	reqs := make([]geminiEmbedRequest, len(texts))
	for i, t := range texts {
		reqs[i] = geminiEmbedRequest{
			Model:                geminiModel(cfg.Model),
			Content:              geminiContent{Parts: []geminiPart{{Text: t}}},
			TaskType:             cfg.InputType,
			OutputDimensionality: cfg.OutputDimensions,
		}
	}
	return geminiBatchRequest{Requests: reqs}
}

// auth sends the key in a header, never in the URL, so it stays out of logs and redirects.
func (geminiWire) auth(h http.Header, key APIKey) {
	if !key.Empty() {
		h.Set("x-goog-api-key", key.Reveal())
	}
}

func (geminiWire) parse(body []byte) ([][]float64, error) {
	var v struct {
		Embeddings *[]struct {
			Values []float64 `json:"values"`
		} `json:"embeddings"`
	}
	if err := decodeStrict(body, &v); err != nil {
		return nil, err
	}
	if v.Embeddings == nil {
		return nil, fmt.Errorf("%w: no \"embeddings\" list", ErrMalformedResponse)
	}
	out := make([][]float64, len(*v.Embeddings))
	for i, e := range *v.Embeddings {
		if e.Values == nil {
			return nil, fmt.Errorf("%w: embedding %d has no values", ErrMalformedResponse, i)
		}
		out[i] = e.Values
	}
	return out, nil
}
