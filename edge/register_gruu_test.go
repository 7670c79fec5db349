package edge

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"google.golang.org/protobuf/types/known/durationpb"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"

	"github.com/sipd/sipd/edge/transport"
)

// TestRegisterGRUU checks that Supported: gruu reaches the registrar and
// that the GRUUs it answers are written as the Contact's pub-gruu and
// temp-gruu parameters (RFC 5627), and left out when the registrar gives
// none.
func TestRegisterGRUU(t *testing.T) {
	const (
		pub  = "sip:alice@localhost;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
		temp = "sip:tgruu.AbC-_9@localhost;gr"
	)
	reg := &fakeRegistrar{fn: func(_ context.Context, in *registrarv1.RegisterRequest) (*registrarv1.RegisterResponse, error) {
		b := &registrarv1.Binding{Uri: in.Contacts[0].Uri, Expires: durationpb.New(time.Hour), Instance: in.Contacts[0].Instance}
		if in.Gruu {
			b.PubGruu, b.TempGruu = pub, temp
		}
		return &registrarv1.RegisterResponse{Code: 200, Bindings: []*registrarv1.Binding{b}}, nil
	}}
	te := startEdge(t, testConfig(), Deps{Registrar: reg})
	tests := []struct {
		name      string
		supported string
		want      bool
	}{
		{"supported", "Supported: path, GRUU", true},
		{"not supported", "Supported: path", false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUA(t, transport.UDP)
			u.sendTo(te.udp, msg("REGISTER sip:localhost SIP/2.0", []string{
				"Via: " + u.via(fmt.Sprintf("z9hG4bK-gruu%d", i)),
				"Max-Forwards: 70",
				"From: <sip:alice@localhost>;tag=g1", "To: <sip:alice@localhost>", fmt.Sprintf("Call-ID: gruu-%d", i), "CSeq: 1 REGISTER",
				fmt.Sprintf(`Contact: <sip:alice@%s>;+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"`, u.addr),
				tc.supported,
			}, ""))
			r := u.expect("200 to REGISTER", wait, isResponse(sip.REGISTER, 200)).msg.(*sip.Response)
			if got := reg.last().Gruu; got != tc.want {
				t.Errorf("RegisterRequest.gruu = %v, want %v", got, tc.want)
			}
			c := r.GetHeader("Contact")
			if c == nil {
				t.Fatal("no Contact in the 200")
			}
			hasPub := strings.Contains(c.Value(), `;pub-gruu="`+pub+`"`)
			hasTemp := strings.Contains(c.Value(), `;temp-gruu="`+temp+`"`)
			if hasPub != tc.want || hasTemp != tc.want {
				t.Errorf("Contact = %s; want pub-gruu and temp-gruu: %v", c.Value(), tc.want)
			}
		})
	}
}
