package transaction

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// ClientUser is the transaction user of a client transaction.
type ClientUser interface {
	// ClientResponse passes a response up: provisional responses, the first
	// final response and, for INVITE, every 2xx (RFC 6026). Retransmitted
	// non-2xx finals are absorbed.
	ClientResponse(tx *ClientTx, res *sip.Response)
	// ClientTimeout reports that no final response came in time: Timer B or
	// F, or the INVITE timeout after a provisional. The user treats it as a
	// 408. It is called at most once.
	ClientTimeout(tx *ClientTx)
}

// ClientTx is a client transaction: it retransmits its request over
// unreliable transports, times out, and acknowledges non-2xx final
// responses to INVITE itself (RFC 3261 17.1.1.3).
type ClientTx struct {
	l        *Layer
	key      string
	invite   bool
	reliable bool
	send     SendFunc
	user     ClientUser
	req      *sip.Request
	data     []byte

	mu       sync.Mutex
	state    State
	timedOut bool
	interval int64
	ack      []byte
	tA, tB   *timer // A/E and B/F/fr_inv/D/K/M
}

// NewClient creates a client transaction for req (already serialized as
// data) under key, sends the request and starts the timers. The user must
// not reuse req afterwards: the transaction builds ACK and CANCEL from it.
func (l *Layer) NewClient(key string, req *sip.Request, data []byte, reliable bool, send SendFunc, user ClientUser) (*ClientTx, error) {
	tx := &ClientTx{
		l:        l,
		key:      key,
		invite:   req.Method == sip.INVITE,
		reliable: reliable,
		send:     send,
		user:     user,
		req:      req,
		data:     data,
	}
	if tx.invite {
		tx.state = StateCalling
	} else {
		tx.state = StateTrying
	}
	if _, ok := l.client.insert(key, tx); !ok {
		return nil, ErrExists
	}
	l.inFlight.Add(1)

	t := l.timers
	tx.mu.Lock()
	if !reliable {
		tx.interval = int64(t.T1)
		tx.tA = l.wheel.after(t.T1, tx.timerA)
	}
	tx.tB = l.wheel.after(t.FinalTimeout, tx.timerB)
	tx.mu.Unlock()
	if err := send(data); err != nil {
		tx.Terminate()
		return nil, err
	}
	return tx, nil
}

// Key returns the transaction key.
func (tx *ClientTx) Key() string { return tx.key }

// Request returns the request the transaction sent.
func (tx *ClientTx) Request() *sip.Request { return tx.req }

// State returns the current state.
func (tx *ClientTx) State() State {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.state
}

// Receive handles a response matched to this transaction.
func (tx *ClientTx) Receive(res *sip.Response) {
	code := res.StatusCode
	tx.mu.Lock()
	st := tx.state
	if st == StateTerminated {
		tx.mu.Unlock()
		return
	}
	pass := !tx.timedOut
	var sendAck []byte
	var terminate bool
	t := tx.l.timers
	switch {
	case code < 200:
		if st == StateCalling || st == StateTrying {
			tx.state = StateProceeding
			if tx.invite {
				tx.tA.stop()
				tx.tA = nil
				if !tx.timedOut {
					tx.tB.stop()
					tx.tB = tx.l.wheel.after(t.InviteTimeout, tx.timerInvite)
				}
			}
		} else if st != StateProceeding {
			pass = false
		}
	case tx.invite && code < 300:
		pass = true // every 2xx goes up, even after a timeout
		if st != StateAccepted {
			tx.state = StateAccepted
			tx.tA.stop()
			tx.tB.stop()
			tx.tB = tx.l.wheel.after(64*t.T1, tx.timerM)
		}
	case tx.invite:
		switch st {
		case StateCalling, StateProceeding:
			tx.state = StateCompleted
			tx.tA.stop()
			tx.tB.stop()
			tx.ack = buildACK(tx.req, res)
			sendAck = tx.ack
			if tx.reliable {
				terminate = true
			} else {
				tx.tB = tx.l.wheel.after(64*t.T1, tx.timerD)
			}
		case StateCompleted:
			sendAck = tx.ack
			pass = false
		default:
			pass = false
		}
	default:
		if st == StateTrying || st == StateProceeding {
			tx.state = StateCompleted
			tx.tA.stop()
			tx.tB.stop()
			if tx.reliable {
				terminate = true
			} else {
				tx.tB = tx.l.wheel.after(t.T4, tx.timerK)
			}
		} else {
			pass = false
		}
	}
	tx.mu.Unlock()
	if sendAck != nil {
		_ = tx.send(sendAck)
	}
	if pass && tx.user != nil {
		tx.user.ClientResponse(tx, res)
	}
	if terminate {
		tx.Terminate()
	}
}

// Terminate ends the transaction at once and removes it from the table.
func (tx *ClientTx) Terminate() {
	tx.mu.Lock()
	if tx.state == StateTerminated {
		tx.mu.Unlock()
		return
	}
	tx.state = StateTerminated
	tx.tA.stop()
	tx.tB.stop()
	tx.mu.Unlock()
	tx.l.removeClient(tx.key, tx)
}

// timerA retransmits the request (Timer A for INVITE, E for the others).
func (tx *ClientTx) timerA() {
	tx.mu.Lock()
	if tx.state != StateCalling && tx.state != StateTrying && !(tx.state == StateProceeding && !tx.invite) {
		tx.mu.Unlock()
		return
	}
	if tx.invite {
		tx.interval *= 2
	} else if tx.state == StateProceeding {
		tx.interval = int64(tx.l.timers.T2)
	} else {
		tx.interval = min(2*tx.interval, int64(tx.l.timers.T2))
	}
	tx.tA = tx.l.wheel.after(durationOf(tx.interval), tx.timerA)
	tx.mu.Unlock()
	_ = tx.send(tx.data)
}

// timerB fires when no final response came (Timer B or F).
func (tx *ClientTx) timerB() {
	tx.mu.Lock()
	if tx.state != StateCalling && tx.state != StateTrying && tx.state != StateProceeding {
		tx.mu.Unlock()
		return
	}
	tx.mu.Unlock()
	tx.timeout()
	tx.Terminate()
}

// timerInvite fires when an INVITE got a provisional but no final response
// within InviteTimeout. The transaction stays to absorb the final response
// the user's CANCEL provokes, until the final timeout.
func (tx *ClientTx) timerInvite() {
	tx.mu.Lock()
	if tx.state != StateProceeding {
		tx.mu.Unlock()
		return
	}
	tx.tB = tx.l.wheel.after(tx.l.timers.FinalTimeout, tx.Terminate)
	tx.mu.Unlock()
	tx.timeout()
}

func (tx *ClientTx) timeout() {
	tx.mu.Lock()
	if tx.timedOut {
		tx.mu.Unlock()
		return
	}
	tx.timedOut = true
	tx.mu.Unlock()
	if tx.user != nil {
		tx.user.ClientTimeout(tx)
	}
}

// timerD ends the INVITE Completed state.
func (tx *ClientTx) timerD() { tx.Terminate() }

// timerK ends the non-INVITE Completed state.
func (tx *ClientTx) timerK() { tx.Terminate() }

// timerM ends the Accepted state (RFC 6026).
func (tx *ClientTx) timerM() { tx.Terminate() }

func durationOf(ns int64) time.Duration { return time.Duration(ns) }

// buildACK builds the ACK for a non-2xx final response to req (RFC 3261
// 17.1.1.3): same Request-URI, top Via, Route set, From, Call-ID and CSeq
// number; To from the response.
func buildACK(req *sip.Request, res *sip.Response) []byte {
	ack := sip.NewRequest(sip.ACK, *req.Recipient.Clone())
	ack.SipVersion = req.SipVersion
	if via := req.Via(); via != nil {
		ack.AppendHeader(via.Clone())
	}
	for _, h := range req.GetHeaders("Route") {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	ack.AppendHeader(sip.NewHeader("Max-Forwards", "70"))
	if h := req.From(); h != nil {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	if h := res.To(); h != nil {
		ack.AppendHeader(sip.HeaderClone(h))
	} else if h := req.To(); h != nil {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	if h := req.CallID(); h != nil {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	var seq uint32
	if c := req.CSeq(); c != nil {
		seq = c.SeqNo
	}
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.ACK})
	ack.AppendHeader(sip.NewHeader("Content-Length", "0"))
	return []byte(ack.String())
}

// BuildCANCEL builds the CANCEL for an INVITE sent by a client transaction
// (RFC 3261 9.1): same Request-URI, top Via, Route set, From, To, Call-ID
// and CSeq number.
func BuildCANCEL(req *sip.Request) *sip.Request {
	c := sip.NewRequest(sip.CANCEL, *req.Recipient.Clone())
	c.SipVersion = req.SipVersion
	if via := req.Via(); via != nil {
		c.AppendHeader(via.Clone())
	}
	for _, h := range req.GetHeaders("Route") {
		c.AppendHeader(sip.HeaderClone(h))
	}
	c.AppendHeader(sip.NewHeader("Max-Forwards", "70"))
	for _, name := range []string{"From", "To", "Call-ID"} {
		if h := req.GetHeader(name); h != nil {
			c.AppendHeader(sip.HeaderClone(h))
		}
	}
	var seq uint32
	if cs := req.CSeq(); cs != nil {
		seq = cs.SeqNo
	}
	c.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.CANCEL})
	c.AppendHeader(sip.NewHeader("Content-Length", "0"))
	return c
}
