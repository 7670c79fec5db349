//go:build !linux

package transport

import (
	"context"
	"errors"
	"sync"
)

// poller is not available here: idle connections keep their reading goroutine.
type poller struct{}

func newPoller(*Layer) (*poller, error) {
	return nil, errors.New("transport: parking idle connections needs linux epoll")
}

func (p *poller) start(context.Context, *sync.WaitGroup) {}
func (p *poller) close()                                 {}
func (p *poller) park(*conn) bool                        { return false }
func (p *poller) forget(*conn)                           {}
func (p *poller) parkedCount() int                       { return 0 }
