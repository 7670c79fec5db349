package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"github.com/sipd/sipd/router/steps"
	"google.golang.org/grpc"
)

type fakeAuth struct {
	resp  *registrarv1.AuthenticateResponse
	err   error
	asked []*registrarv1.AuthenticateRequest
}

func (f *fakeAuth) Authenticate(_ context.Context, in *registrarv1.AuthenticateRequest, _ ...grpc.CallOption) (*registrarv1.AuthenticateResponse, error) {
	f.asked = append(f.asked, in)
	return f.resp, f.err
}

var _ Authenticator = registrarv1.RegistrarServiceClient(nil)

func TestRoute(t *testing.T) {
	challenge := &registrarv1.AuthenticateResponse{Code: 407, Challenges: []*registrarv1.Challenge{{Value: `Digest realm="example.com", nonce="a", algorithm=SHA-256, qop="auth"`}, {Value: `Digest realm="example.com", nonce="a", algorithm=MD5, qop="auth"`}}}
	tests := []struct {
		name     string
		in       *routerv1.RouteRequest
		resp     *registrarv1.AuthenticateResponse
		err      error
		wantCode int32 // 0: passes to the next step
		wantAsk  bool
		wantHdrs int
	}{
		{name: "trusted passes", in: &routerv1.RouteRequest{Method: "INVITE", FromUri: "sip:alice@example.com", Trusted: true}},
		{name: "foreign from passes", in: &routerv1.RouteRequest{Method: "INVITE", FromUri: "sip:x@foreign.example"}},
		{name: "ack passes", in: &routerv1.RouteRequest{Method: "ACK", FromUri: "sip:alice@example.com"}},
		{name: "good credentials pass", in: &routerv1.RouteRequest{Method: "INVITE", FromUri: "sip:alice@example.com"},
			resp: &registrarv1.AuthenticateResponse{Code: 200}, wantAsk: true},
		{name: "challenge", in: &routerv1.RouteRequest{Method: "INVITE", FromUri: "sip:alice@example.com;x=y"},
			resp: challenge, wantAsk: true, wantCode: 407, wantHdrs: 2},
		{name: "forbidden", in: &routerv1.RouteRequest{Method: "MESSAGE", FromUri: "sip:alice@EXAMPLE.com"},
			resp: &registrarv1.AuthenticateResponse{Code: 403}, wantAsk: true, wantCode: 403},
		{name: "registrar down", in: &routerv1.RouteRequest{Method: "INVITE", FromUri: "sip:alice@example.com"},
			err: errors.New("unavailable"), wantAsk: true, wantCode: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAuth{resp: tt.resp, err: tt.err}
			s := New(f, []string{"example.com"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			resp, err := s.Route(context.Background(), &steps.Request{In: tt.in})
			if err != nil {
				t.Fatalf("Route = %v", err)
			}
			if got := len(f.asked) > 0; got != tt.wantAsk {
				t.Errorf("asked registrar = %v, want %v", got, tt.wantAsk)
			}
			if tt.wantCode == 0 {
				if resp != nil {
					t.Fatalf("Route = %v, want nil (next step)", resp)
				}
				return
			}
			rej := resp.GetReject()
			if rej.GetCode() != tt.wantCode || len(rej.GetHeaders()) != tt.wantHdrs {
				t.Fatalf("Route = %v, want reject %d with %d headers", resp, tt.wantCode, tt.wantHdrs)
			}
			for _, h := range rej.GetHeaders() {
				if h.GetName() != "Proxy-Authenticate" {
					t.Errorf("header %q, want Proxy-Authenticate", h.GetName())
				}
			}
		})
	}
}
