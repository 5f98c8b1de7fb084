package embed

import (
	"errors"
	"math"
	"testing"
)

// FuzzDecoders feeds arbitrary bodies to every answer and error decoder: they
// must not panic, and whatever passes checkVectors is exactly n finite
// vectors of the right length.
func FuzzDecoders(f *testing.F) {
	for _, s := range []string{
		`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1]}]}`,
		`{"data":[{"index":1,"embedding":[1,2]},{"index":0,"embedding":[3,4]}]}`,
		`{"data":[{"embedding":[1,2]},{"embedding":[3,4]}]}`,
		`{"embeddings":[{"values":[0.1,0.2]}]}`,
		`{"error":{"message":"quota","status":"RESOURCE_EXHAUSTED","code":429}}`,
		`{"detail":"Invalid input"}`, `{"detail":[{"msg":"field required"}]}`,
		`{"object":"error","message":"Unauthorized","type":"invalid_request"}`,
		`{"data":[{"index":0,"embedding":[NaN,1]}]}`, `{"data":[{"index":0,"embedding":[1e39,1]}]}`, `[]`, `null`,
	} {
		f.Add([]byte(s), uint8(1), uint8(2))
	}
	f.Fuzz(func(t *testing.T, body []byte, n, dims uint8) {
		errorFields(body)
		for _, w := range []wire{openAIWire{}, geminiWire{}, voyageWire{}, mistralWire{}} {
			raw, err := w.parse(body)
			if err != nil {
				if !errors.Is(err, ErrMalformedResponse) {
					t.Fatalf("parse error %v does not match ErrMalformedResponse", err)
				}
				continue
			}
			vecs, err := checkVectors(raw, int(n), int(dims))
			if err != nil {
				continue
			}
			if len(vecs) != int(n) {
				t.Fatalf("%d vectors passed for %d texts", len(vecs), n)
			}
			for _, v := range vecs {
				if len(v) != int(dims) {
					t.Fatalf("vector of %d passed for %d dims", len(v), dims)
				}
				for _, x := range v {
					if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
						t.Fatalf("non-finite %v passed", x)
					}
				}
			}
		}
	})
}
