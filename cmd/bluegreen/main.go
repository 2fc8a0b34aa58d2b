// Command bluegreen deploys a new revision of a web service beside the live one,
// shifts traffic to it through its own router, and retires the old one safely.
package main

import (
	"os"

	"bluegreen/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
