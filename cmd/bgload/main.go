// Command bgload sends steady HTTP load at a fixed rate for a bounded time and
// prints a JSON summary; with -records it writes one line per request:
// start and end (Unix nanoseconds), status and the recorded header.
package main

import (
	"os"

	"bluegreen/internal/loadgen"
)

func main() {
	os.Exit(loadgen.Main("bgload", os.Args[1:], os.Stdout, os.Stderr))
}
