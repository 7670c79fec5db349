// Command registrar runs sipd's registrar. See the README and docs/configuration.md.
package main

import (
	"os"

	"github.com/sipd/sipd/services/app"
	"github.com/sipd/sipd/services/config"
)

func main() {
	os.Exit(app.Main(config.RoleRegistrar, os.Args[1:], os.Stderr))
}
