package memory

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"
)

// DefaultPrefix is the key prefix used when Options.Prefix is empty.
const DefaultPrefix = "memory/"

// keys builds the store's Badger keys; see the layout in doc.go.
type keys struct{ p string }

func (k keys) meta() []byte           { return []byte(k.p + "meta") }
func (k keys) chunk(id string) []byte { return []byte(k.p + "c/" + id) }
func (k keys) chunks() []byte         { return []byte(k.p + "c/") }
func (k keys) embed(id string) []byte { return []byte(k.p + "e/" + id) }
func (k keys) embeds() []byte         { return []byte(k.p + "e/") }
func (k keys) logs() []byte           { return []byte(k.p + "l/") }
func (k keys) pathOf(c Chunk) []byte  { return []byte(k.byPath(c.Source, c.Path) + c.ID) }
func (k keys) byPath(src, p string) string {
	return k.p + "p/" + src + "\x00" + p + "\x00"
}

func (k keys) log(seq uint64, id string) []byte {
	b := append([]byte(k.p+"l/"), make([]byte, 8)...)
	binary.BigEndian.PutUint64(b[len(b)-8:], seq)
	return append(b, id...)
}

// parseLog splits a log key into its sequence and chunk id.
func (k keys) parseLog(key []byte) (uint64, string, error) {
	rest := key[len(k.p)+2:]
	if len(rest) < 8 {
		return 0, "", fmt.Errorf("short log key %q", key)
	}
	return binary.BigEndian.Uint64(rest[:8]), string(rest[8:]), nil
}

// meta is the store's bookkeeping record.
type meta struct {
	Instance string `json:"instance"`
	Seq      uint64 `json:"seq"`
	Trimmed  uint64 `json:"trimmed"`
	Dim      int    `json:"dim,omitempty"`
	Model    string `json:"model,omitempty"`
}

func getJSON(txn *badger.Txn, key []byte, v any) (bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

func setJSON(txn *badger.Txn, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set(key, b)
}

// encodeEmbedding stores the model name with the vector.
func encodeEmbedding(model string, v []float32) []byte {
	b := make([]byte, 2+len(model)+4*len(v))
	binary.LittleEndian.PutUint16(b, uint16(len(model)))
	copy(b[2:], model)
	off := 2 + len(model)
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[off+4*i:], math.Float32bits(x))
	}
	return b
}

func decodeEmbedding(b []byte) (string, []float32, error) {
	if len(b) < 2 {
		return "", nil, errors.New("short embedding record")
	}
	n := int(binary.LittleEndian.Uint16(b))
	if len(b) < 2+n || (len(b)-2-n)%4 != 0 {
		return "", nil, errors.New("malformed embedding record")
	}
	model := string(b[2 : 2+n])
	raw := b[2+n:]
	v := make([]float32, len(raw)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return model, v, nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
