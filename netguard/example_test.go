package netguard_test

import (
	"errors"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/netguard"
)

func ExampleGuard_CheckURL() {
	g, err := netguard.New(netguard.Config{Allow: []string{"localhost:11434"}})
	if err != nil {
		panic(err)
	}
	for _, u := range []string{
		"http://localhost:11434/v1/embeddings",
		"http://169.254.169.254/latest/meta-data/",
		"http://0x7f000001:11434/",
	} {
		err := g.CheckURL(u)
		var be *netguard.BlockedError
		if errors.As(err, &be) {
			fmt.Println("blocked:", be.Reason)
			continue
		}
		fmt.Println("ok:", u)
	}
	// Output:
	// ok: http://localhost:11434/v1/embeddings
	// blocked: cloud metadata endpoint (169.254.169.254)
	// blocked: non-canonical IPv4 literal (means 127.0.0.1); write it as dotted decimal
}
