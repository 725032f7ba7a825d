// Command gohash holds Sluice's hashes to Go's own JSON encoding. `gohash table` prints the Rust table of Go
// types Sluice encodes with; `gohash oracle` answers hash requests with Argo Rollouts' own functions.
package main

import (
	"fmt"
	"os"
)

func main() {
	switch {
	case len(os.Args) == 2 && os.Args[1] == "table":
		printTable()
	case len(os.Args) == 2 && os.Args[1] == "oracle":
		oracle()
	default:
		fmt.Fprintln(os.Stderr, "usage: gohash table | gohash oracle")
		os.Exit(2)
	}
}
