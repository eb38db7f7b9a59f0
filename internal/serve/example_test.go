package serve_test

import (
	"fmt"

	"github.com/bt-org/bt/internal/serve"
)

// A server listens on loopback unless its user says otherwise.
func ExampleCheckAddr() {
	fmt.Println(serve.CheckAddr("127.0.0.1:8080", false))
	fmt.Println(serve.CheckAddr(":8080", false))
	fmt.Println(serve.CheckAddr("0.0.0.0:8080", true))
	// Output:
	// <nil>
	// -addr :8080: not a loopback address, so the runs would be served to the network; bind to 127.0.0.1, or give -allow-remote to mean it
	// <nil>
}
