package transaction

import (
	"sync"

	"github.com/emiago/sipgo/sip"
)

// ServerUser is the transaction user of a server transaction.
type ServerUser interface {
	// ServerTerminated is called once when the transaction ends.
	ServerTerminated(tx *ServerTx)
}

// ServerTx is a server transaction: it absorbs request retransmissions,
// retransmits final INVITE responses over unreliable transports and absorbs
// the ACK of a non-2xx final response.
type ServerTx struct {
	l        *Layer
	key      string
	invite   bool
	reliable bool
	send     SendFunc
	user     ServerUser

	mu       sync.Mutex
	state    State
	last     []byte // last response sent, resent on retransmissions
	lastCode int
	interval int64  // Timer G interval, nanoseconds
	tG, tH   *timer // G/H, or J/L/I in the other states
}

// NewServer creates the server transaction of req under key. It returns the
// existing transaction and false when key is already in the table (a
// retransmission racing the first copy).
func (l *Layer) NewServer(key string, req *sip.Request, reliable bool, send SendFunc, user ServerUser) (*ServerTx, bool) {
	tx := &ServerTx{
		l:        l,
		key:      key,
		invite:   req.Method == sip.INVITE,
		reliable: reliable,
		send:     send,
		user:     user,
	}
	if tx.invite {
		tx.state = StateProceeding
	} else {
		tx.state = StateTrying
	}
	if old, ok := l.server.insert(key, tx); !ok {
		return old, false
	}
	l.inFlight.Add(1)
	return tx, true
}

// Key returns the transaction key.
func (tx *ServerTx) Key() string { return tx.key }

// User returns the transaction user.
func (tx *ServerTx) User() ServerUser { return tx.user }

// State returns the current state.
func (tx *ServerTx) State() State {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.state
}

// LastCode returns the status code of the last response sent, 0 if none.
func (tx *ServerTx) LastCode() int {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.lastCode
}

// Respond sends a response with status code through the transaction and
// moves it on. After a 2xx to an INVITE further 2xx still pass (RFC 6026
// Accepted); any other response after the final one returns ErrFinal.
func (tx *ServerTx) Respond(code int, data []byte) error {
	tx.mu.Lock()
	switch tx.state {
	case StateTrying, StateProceeding:
	case StateAccepted:
		if code < 200 || code >= 300 {
			tx.mu.Unlock()
			return ErrFinal
		}
	case StateTerminated:
		tx.mu.Unlock()
		return ErrTerminated
	default:
		tx.mu.Unlock()
		return ErrFinal
	}
	t := tx.l.timers
	var terminate bool
	switch {
	case code < 200:
		tx.state = StateProceeding
		tx.last, tx.lastCode = data, code
	case tx.invite && code < 300:
		if tx.state != StateAccepted {
			tx.state = StateAccepted
			tx.lastCode = code
			tx.last = nil // the 2xx is retransmitted end to end, not by us
			tx.tH = tx.l.wheel.after(64*t.T1, tx.timerL)
		}
	case tx.invite:
		tx.state = StateCompleted
		tx.last, tx.lastCode = data, code
		if !tx.reliable {
			tx.interval = int64(t.T1)
			tx.tG = tx.l.wheel.after(t.T1, tx.timerG)
		}
		tx.tH = tx.l.wheel.after(64*t.T1, tx.timerH)
	default:
		tx.state = StateCompleted
		tx.last, tx.lastCode = data, code
		if tx.reliable {
			terminate = true
		} else {
			tx.tH = tx.l.wheel.after(64*t.T1, tx.timerJ)
		}
	}
	tx.mu.Unlock()
	err := tx.send(data)
	if terminate {
		tx.Terminate()
	}
	return err
}

// Retransmission handles a retransmitted request: the last response is
// sent again (for INVITE in Proceeding, the last provisional).
func (tx *ServerTx) Retransmission() {
	tx.mu.Lock()
	data := tx.last
	if tx.state == StateAccepted || tx.state == StateConfirmed || tx.state == StateTerminated {
		data = nil
	}
	tx.mu.Unlock()
	if data != nil {
		_ = tx.send(data)
	}
}

// Ack handles an ACK matching this INVITE transaction. It reports whether
// the ACK was absorbed (it acknowledged a non-2xx final response).
func (tx *ServerTx) Ack() bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	switch tx.state {
	case StateCompleted:
		tx.state = StateConfirmed
		tx.tG.stop()
		tx.tH.stop()
		d := tx.l.timers.T4
		if tx.reliable {
			d = 0
		}
		tx.tH = tx.l.wheel.after(d, tx.timerI)
		return true
	case StateConfirmed:
		return true
	}
	return false
}

// Terminate ends the transaction at once and removes it from the table.
func (tx *ServerTx) Terminate() {
	tx.mu.Lock()
	if tx.state == StateTerminated {
		tx.mu.Unlock()
		return
	}
	tx.state = StateTerminated
	tx.tG.stop()
	tx.tH.stop()
	tx.mu.Unlock()
	tx.l.removeServer(tx.key, tx)
	if tx.user != nil {
		tx.user.ServerTerminated(tx)
	}
}

func (tx *ServerTx) timerG() {
	tx.mu.Lock()
	if tx.state != StateCompleted {
		tx.mu.Unlock()
		return
	}
	data := tx.last
	tx.interval *= 2
	if t2 := int64(tx.l.timers.T2); tx.interval > t2 {
		tx.interval = t2
	}
	tx.tG = tx.l.wheel.after(durationOf(tx.interval), tx.timerG)
	tx.mu.Unlock()
	_ = tx.send(data)
}

// timerH fires when no ACK arrived for a non-2xx final response.
func (tx *ServerTx) timerH() { tx.Terminate() }

// timerI ends the Confirmed state.
func (tx *ServerTx) timerI() { tx.Terminate() }

// timerJ ends the non-INVITE Completed state.
func (tx *ServerTx) timerJ() { tx.Terminate() }

// timerL ends the Accepted state (RFC 6026).
func (tx *ServerTx) timerL() { tx.Terminate() }
