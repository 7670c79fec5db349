// Command sipd runs every sipd service (edge, registrar, router) and an embedded NATS server in one process. See the README.
package main

import (
	"os"

	"github.com/sipd/sipd/services/app"
	"github.com/sipd/sipd/services/config"
)

func main() {
	os.Exit(app.Main(config.RoleSipd, os.Args[1:], os.Stderr))
}
