package vectors_test

import (
	"bytes"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/vectors"
)

func Example() {
	ix, err := vectors.New(vectors.Config{Dim: 3})
	if err != nil {
		panic(err)
	}
	_ = ix.Add("apples", []float32{1, 0.1, 0})
	_ = ix.Add("pears", []float32{0.9, 0.3, 0})
	_ = ix.Add("engines", []float32{0, 0.1, 1})
	_ = ix.Upsert("pears", []float32{0.8, 0.5, 0.1}) // replaces the vector
	ix.Delete("engines")

	res, _ := ix.Search([]float32{1, 0, 0}, 2)
	for _, r := range res {
		fmt.Printf("%s %.3f\n", r.ID, r.Score)
	}

	var buf bytes.Buffer
	_ = ix.Save(&buf)
	loaded, _ := vectors.Load(&buf)
	fmt.Println(loaded.Len())

	_, err = ix.Search([]float32{0, 0}, 1)
	fmt.Println(err)
	// Output:
	// apples 0.995
	// pears 0.843
	// 2
	// query: vectors: wrong dimension: got 2, index has 3
}
