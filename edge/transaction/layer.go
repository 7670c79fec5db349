package transaction

import (
	"context"
	"errors"
	"hash/maphash"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// shardCount is the number of shards of each transaction table; a power of two.
const shardCount = 256

// Sentinel errors of the transaction layer.
var (
	// ErrNoVia reports a message without a usable top Via.
	ErrNoVia = errors.New("transaction: no via")
	// ErrNoCSeq reports a message without a CSeq.
	ErrNoCSeq = errors.New("transaction: no cseq")
	// ErrExists reports a transaction key already in the table.
	ErrExists = errors.New("transaction: key exists")
	// ErrFinal reports a response after the transaction's final response.
	ErrFinal = errors.New("transaction: final response already sent")
	// ErrTerminated reports use of a terminated transaction.
	ErrTerminated = errors.New("transaction: terminated")
)

// Timers holds the protocol timer values (RFC 3261 section 17 and table 4).
type Timers struct {
	// T1 is the RTT estimate (500ms).
	T1 time.Duration `yaml:"t1"`
	// T2 caps the retransmission interval of non-INVITE requests and INVITE responses (4s).
	T2 time.Duration `yaml:"t2"`
	// T4 is the longest time a message stays in the network (5s).
	T4 time.Duration `yaml:"t4"`
	// InviteTimeout bounds how long an INVITE client transaction waits for a
	// final response once a provisional arrived (fr_inv_timer, 120s).
	InviteTimeout time.Duration `yaml:"invite_timeout"`
	// FinalTimeout bounds how long a client transaction waits for any
	// response: Timers B and F (fr_timer, 32s).
	FinalTimeout time.Duration `yaml:"final_timeout"`
}

// SetDefaults fills zero values with the RFC 3261 defaults.
func (t *Timers) SetDefaults() {
	if t.T1 == 0 {
		t.T1 = 500 * time.Millisecond
	}
	if t.T2 == 0 {
		t.T2 = 4 * time.Second
	}
	if t.T4 == 0 {
		t.T4 = 5 * time.Second
	}
	if t.InviteTimeout == 0 {
		t.InviteTimeout = 120 * time.Second
	}
	if t.FinalTimeout == 0 {
		t.FinalTimeout = 64 * t.T1
	}
}

// Config configures a Layer.
type Config struct {
	Timers Timers
	// Tick is the timer wheel resolution; default 10ms.
	Tick time.Duration
}

// SendFunc sends one serialized message to a transaction's peer.
type SendFunc func(data []byte) error

// Layer holds the transaction tables and the timer wheel.
type Layer struct {
	timers   Timers
	wheel    *wheel
	server   table[*ServerTx]
	client   table[*ClientTx]
	inFlight atomic.Int64
}

// New builds a Layer; it starts nothing until Run.
func New(cfg Config) *Layer {
	cfg.Timers.SetDefaults()
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	l := &Layer{timers: cfg.Timers, wheel: newWheel(cfg.Tick)}
	seed := maphash.MakeSeed()
	l.server.init(seed)
	l.client.init(seed)
	return l
}

// Run drives the timer wheel until ctx ends.
func (l *Layer) Run(ctx context.Context) error {
	l.wheel.run(ctx)
	return nil
}

// InFlight reports the number of live transactions, server and client.
func (l *Layer) InFlight() int64 { return l.inFlight.Load() }

// Timers returns the layer's timer values.
func (l *Layer) Timers() Timers { return l.timers }

// ServerKey computes the server transaction key of req (RFC 3261 17.2.3):
// branch, sent-by and method, with ACK mapped to INVITE. Requests whose
// branch lacks the magic cookie get the RFC 2543 key: Call-ID, From tag,
// CSeq number, sent-by and method.
func ServerKey(req *sip.Request) (string, error) {
	return ServerKeyFor(req, req.Method)
}

// ServerKeyFor computes the server key of req as if its method were m; a
// CANCEL uses it to find the INVITE it cancels.
func ServerKeyFor(req *sip.Request, m sip.RequestMethod) (string, error) {
	via := req.Via()
	if via == nil {
		return "", ErrNoVia
	}
	if m == sip.ACK {
		m = sip.INVITE
	}
	branch, _ := via.Params.Get("branch")
	// One allocation: the key is assembled on the stack, then copied.
	var buf [128]byte
	b := buf[:0]
	if strings.HasPrefix(branch, sip.RFC3261BranchMagicCookie) {
		b = append(b, branch...)
		b = append(b, '|')
		b = appendSentBy(b, via)
		b = append(b, '|')
		b = append(b, m...)
		return string(b), nil
	}
	cseq := req.CSeq()
	if cseq == nil {
		return "", ErrNoCSeq
	}
	b = append(b, "2543|"...)
	if cid := req.CallID(); cid != nil {
		b = append(b, *cid...)
	}
	b = append(b, '|')
	if f := req.From(); f != nil {
		tag, _ := f.Params.Get("tag")
		b = append(b, tag...)
	}
	b = append(b, '|')
	b = strconv.AppendUint(b, uint64(cseq.SeqNo), 10)
	b = append(b, '|')
	b = appendSentBy(b, via)
	b = append(b, '|')
	b = append(b, m...)
	return string(b), nil
}

// appendSentBy appends the Via's sent-by, host lower-cased, as host:port
// (port 0 when absent).
func appendSentBy(b []byte, via *sip.ViaHeader) []byte {
	for i := 0; i < len(via.Host); i++ {
		c := via.Host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	b = append(b, ':')
	return strconv.AppendInt(b, int64(via.Port), 10)
}

// ClientKey computes the client transaction key of a branch and method
// (RFC 3261 17.1.3); ACK is mapped to INVITE.
func ClientKey(branch string, m sip.RequestMethod) string {
	if m == sip.ACK {
		m = sip.INVITE
	}
	return branch + "|" + string(m)
}

// ResponseKey computes the client transaction key a response matches: its
// top Via branch and CSeq method.
func ResponseKey(res *sip.Response) (string, error) {
	via := res.Via()
	if via == nil {
		return "", ErrNoVia
	}
	cseq := res.CSeq()
	if cseq == nil {
		return "", ErrNoCSeq
	}
	branch, _ := via.Params.Get("branch")
	return ClientKey(branch, cseq.MethodName), nil
}

// FindServer returns the server transaction under key, or nil.
func (l *Layer) FindServer(key string) *ServerTx { return l.server.get(key) }

// FindServerBytes is FindServer for a key held in a byte slice; it does
// not allocate.
func (l *Layer) FindServerBytes(key []byte) *ServerTx { return l.server.getBytes(key) }

// AppendResponseKey appends the key ResponseKey computes to b, so that a
// caller can look the transaction up with FindClientBytes without
// allocating.
func AppendResponseKey(b []byte, res *sip.Response) ([]byte, error) {
	via := res.Via()
	if via == nil {
		return b, ErrNoVia
	}
	cseq := res.CSeq()
	if cseq == nil {
		return b, ErrNoCSeq
	}
	m := cseq.MethodName
	if m == sip.ACK {
		m = sip.INVITE
	}
	branch, _ := via.Params.Get("branch")
	b = append(b, branch...)
	b = append(b, '|')
	return append(b, m...), nil
}

// FindClientBytes is FindClient for a key held in a byte slice; it does
// not allocate.
func (l *Layer) FindClientBytes(key []byte) *ClientTx { return l.client.getBytes(key) }

// FindClient returns the client transaction under key, or nil.
func (l *Layer) FindClient(key string) *ClientTx { return l.client.get(key) }

func (l *Layer) removeServer(key string, tx *ServerTx) {
	l.server.remove(key, tx)
	l.inFlight.Add(-1)
}

func (l *Layer) removeClient(key string, tx *ClientTx) {
	l.client.remove(key, tx)
	l.inFlight.Add(-1)
}

// State is a transaction state (RFC 3261 figures 5 to 8, RFC 6026 figures 3 and 5).
type State uint8

// Transaction states.
const (
	StateCalling State = iota + 1
	StateTrying
	StateProceeding
	StateAccepted
	StateCompleted
	StateConfirmed
	StateTerminated
)

// String names the state.
func (s State) String() string {
	switch s {
	case StateCalling:
		return "calling"
	case StateTrying:
		return "trying"
	case StateProceeding:
		return "proceeding"
	case StateAccepted:
		return "accepted"
	case StateCompleted:
		return "completed"
	case StateConfirmed:
		return "confirmed"
	case StateTerminated:
		return "terminated"
	}
	return "unknown"
}
