// Command edge runs sipd's edge. See the README and docs/configuration.md.
package main

import (
	"os"

	"github.com/sipd/sipd/services/app"
	"github.com/sipd/sipd/services/config"
)

func main() {
	os.Exit(app.Main(config.RoleEdge, os.Args[1:], os.Stderr))
}
