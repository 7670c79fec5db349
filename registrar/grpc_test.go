package registrar_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	"github.com/sipd/sipd/registrar"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// serve starts a gRPC server for r on 127.0.0.1:0 and returns a client.
func serve(t *testing.T, r *registrar.Registrar) registrarv1.RegistrarServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	srv := grpc.NewServer()
	registrarv1.RegisterRegistrarServiceServer(srv, r)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		<-done
	})
	return registrarv1.NewRegistrarServiceClient(conn)
}

func TestGRPC(t *testing.T) {
	r, err := registrar.New(registrar.Config{}, registrar.Deps{})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	client := serve(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	reg, err := client.Register(ctx, &registrarv1.RegisterRequest{
		Aor:    "sip:alice@example.com",
		CallId: "c1",
		Cseq:   1,
		Contacts: []*registrarv1.ContactUpdate{
			{Uri: "sip:alice@192.168.0.10:5060", Expires: durationpb.New(10 * time.Minute), Q: 1000},
		},
		Flow: &registrarv1.Flow{Edge: "edge1", Transport: registrarv1.Transport_TRANSPORT_UDP, Source: "203.0.113.9:6000"},
	})
	if err != nil || reg.GetCode() != 200 || len(reg.GetBindings()) != 1 {
		t.Fatalf("Register = %v, %v; want 200 with one binding", reg, err)
	}
	if got := reg.GetBindings()[0].GetExpires().AsDuration(); got != 10*time.Minute {
		t.Errorf("expires = %v, want 10m", got)
	}

	look, err := client.Lookup(ctx, &registrarv1.LookupRequest{Aor: "sip:alice@example.com"})
	if err != nil || look.GetStatus() != registrarv1.LookupStatus_LOOKUP_STATUS_FOUND {
		t.Fatalf("Lookup = %v, %v; want FOUND", look, err)
	}
	if got := look.GetBindings()[0].GetReceived(); got != "sip:203.0.113.9:6000;transport=udp" {
		t.Errorf("received = %q", got)
	}

	list, err := client.List(ctx, &registrarv1.ListRequest{})
	if err != nil || len(list.GetRecords()) != 1 || list.GetNextPageToken() != "" {
		t.Fatalf("List = %v, %v; want one record, no next page", list, err)
	}

	un, err := client.Unregister(ctx, &registrarv1.UnregisterRequest{Aor: "sip:alice@example.com"})
	if err != nil || un.GetRemoved() != 1 {
		t.Fatalf("Unregister = %v, %v; want 1 removed", un, err)
	}
	look, err = client.Lookup(ctx, &registrarv1.LookupRequest{Aor: "sip:alice@example.com"})
	if err != nil || look.GetStatus() != registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS {
		t.Fatalf("Lookup after Unregister = %v, %v; want NO_CONTACTS", look, err)
	}

	if _, err := client.Lookup(ctx, &registrarv1.LookupRequest{Aor: "bogus"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Lookup(bogus) error = %v, want InvalidArgument", err)
	}
}

// downStore is a store whose backend is unreachable.
type downStore struct{ registrar.Store }

var errDown = fmt.Errorf("dialing redis: connection refused: %w", registrar.ErrStoreUnavailable)

func (downStore) Get(context.Context, string) (registrar.Record, error) {
	return registrar.Record{}, errDown
}

func (downStore) Update(context.Context, string, func(*registrar.Record) error) error {
	return errDown
}

func TestGRPCStoreDown(t *testing.T) {
	r, err := registrar.New(registrar.Config{}, registrar.Deps{Store: downStore{}})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	client := serve(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = client.Register(ctx, &registrarv1.RegisterRequest{
		Aor: "sip:alice@example.com", CallId: "c", Cseq: 1,
		Contacts: []*registrarv1.ContactUpdate{{Uri: "sip:alice@198.51.100.1"}},
	})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Register error = %v, want Unavailable", err)
	}
	_, err = client.Lookup(ctx, &registrarv1.LookupRequest{Aor: "sip:alice@example.com"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Lookup error = %v, want Unavailable", err)
	}
}
