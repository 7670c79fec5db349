package registrar_test

import (
	"testing"

	"github.com/sipd/sipd/registrar"
	"github.com/sipd/sipd/registrar/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) registrar.Store { return registrar.NewMemoryStore() })
}
