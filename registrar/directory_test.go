package registrar_test

import (
	"testing"

	"github.com/sipd/sipd/registrar"
	"github.com/sipd/sipd/registrar/directorytest"
)

func TestMemoryDirectory(t *testing.T) {
	directorytest.Run(t, func(t *testing.T) registrar.Directory { return registrar.NewMemoryDirectory() })
}

func TestMemoryNonceCounter(t *testing.T) {
	directorytest.RunNonceCounter(t, func(t *testing.T, n int) []registrar.NonceCounter {
		c := registrar.NewMemoryNonceCounter(1000)
		out := make([]registrar.NonceCounter, n)
		for i := range out {
			out[i] = c // one process: every "replica" is the same table
		}
		return out
	})
}
