package registrar

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
)

// Digest authentication (RFC 3261 section 22, RFC 7616 for qop and nonce
// counts, RFC 8760 for SHA-256), in the manner of Kamailio's auth and
// auth_db modules: the registrar answers REGISTER with 401 and other
// requests (through Authenticate, called by the router) with 407, offering
// one challenge per algorithm, SHA-256 first.
//
// Nothing in the answers tells an unknown user from a wrong password: both
// get a fresh challenge. stale=true is sent only when the digest was right
// but the nonce was too old or its count was replayed, so that the client
// retries without asking its user again.

// Auth outcomes, also the values of the result label of
// sipd_registrar_auth_total.
const (
	authOK          = "ok"
	authNotRequired = "not_required"
	authChallenge   = "challenge"
	authStale       = "stale"
	authForbidden   = "forbidden"
)

// SIP reason phrases of auth answers.
const (
	reasonUnauthorized  = "Unauthorized"
	reasonProxyAuth     = "Proxy Authentication Required"
	reasonForbidden     = "Forbidden"
	reasonAuthChallenge = "auth_challenge"
	reasonAuthForbidden = "auth_forbidden"
)

// auth is the registrar's digest authentication state.
type auth struct {
	cfg        AuthConfig
	dir        Directory
	nonces     nonces
	counts     NonceCounter
	algorithms []string
	results    *prometheus.CounterVec

	// seedCfg is upserted into a shared directory once, before the first
	// check or API call that needs it (seed); seeded is set once done.
	seedCfg Config
	seedMu  sync.Mutex
	seeded  atomic.Bool
}

// seed upserts the configured domains and users into the directory unless
// that was done already. It is called by Run at start and, lazily, before
// anything reads or changes the directory, so that a request never sees a
// shared directory without the configured domains. A failure is returned
// (and retried by the next call).
func (a *auth) seed(ctx context.Context) error {
	if a.seeded.Load() {
		return nil
	}
	a.seedMu.Lock()
	defer a.seedMu.Unlock()
	if a.seeded.Load() {
		return nil
	}
	if err := seedDirectory(ctx, a.dir, a.seedCfg); err != nil {
		return err
	}
	a.seeded.Store(true)
	return nil
}

// newAuth builds the auth state of a registrar. The directory is
// deps.Directory, else the store's (DirectoryProvider), else a memory
// directory seeded from cfg at once; a shared one is seeded later (seed).
// The nonce counter is chosen the same way. An empty secret is replaced by
// a random one, with a warning when some domain asks for authentication.
func newAuth(cfg Config, deps Deps, log *slog.Logger) (*auth, error) {
	a := &auth{cfg: cfg.Auth, dir: deps.Directory}
	for _, alg := range cfg.Auth.Algorithms {
		if c := canonicalAlgorithm(alg); c != "" && !slices.Contains(a.algorithms, c) {
			a.algorithms = append(a.algorithms, c)
		}
	}
	if a.dir == nil {
		if p, ok := deps.Store.(DirectoryProvider); ok {
			a.dir = p.Directory()
		}
	}
	if a.dir == nil {
		// A memory directory is seeded here: no I/O is involved.
		dir := NewMemoryDirectory()
		if err := seedDirectory(context.Background(), dir, cfg); err != nil {
			return nil, fmt.Errorf("seeding the memory directory: %w", err)
		}
		a.dir = dir
		a.seeded.Store(true)
	}
	a.seedCfg = cfg
	a.counts = deps.NonceCounter
	if a.counts == nil {
		if p, ok := deps.Store.(NonceCounterProvider); ok {
			a.counts = p.NonceCounter()
		}
	}
	if a.counts == nil {
		t := newNCTable(cfg.Auth.MaxNonces)
		if deps.Now != nil {
			t.now = deps.Now
		}
		a.counts = t
	}
	a.nonces = nonces{secret: []byte(cfg.Auth.Secret), lifetime: cfg.Auth.NonceLifetime}
	if cfg.Auth.Secret == "" {
		a.nonces.secret = make([]byte, 32)
		_, _ = rand.Read(a.nonces.secret)
		if slices.ContainsFunc(cfg.Domains, func(d DomainConfig) bool { return d.AuthRequired == nil || *d.AuthRequired }) {
			log.Warn("auth.secret is not set: nonces and temporary GRUUs use a random per-process secret, so only this registrar replica can verify them")
		}
	}
	a.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sipd_registrar_auth_total",
		Help: "Digest authentication checks, by method class (register, other) and result (ok, not_required, challenge, stale, forbidden).",
	}, []string{"method", "result"})
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(a.results); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// authRequest is one request to authenticate.
type authRequest struct {
	method     string
	requestURI string
	// user and domain name the identity the request claims: the AOR of a
	// REGISTER, the From URI otherwise.
	user, domain string
	creds        *registrarv1.DigestCredentials
	trusted      bool
}

// authResult is the outcome of checking a request.
type authResult struct {
	outcome    string // one of the auth outcomes
	challenges []*registrarv1.Challenge
	identity   string
}

// check authenticates req at now. An error is a directory failure.
func (a *auth) check(ctx context.Context, req authRequest, now time.Time) (authResult, error) {
	res, err := a.checkInner(ctx, req, now)
	if err == nil {
		class := "other"
		if strings.EqualFold(req.method, "REGISTER") {
			class = "register"
		}
		a.results.WithLabelValues(class, res.outcome).Inc()
	}
	return res, err
}

func (a *auth) checkInner(ctx context.Context, req authRequest, now time.Time) (authResult, error) {
	if req.trusted {
		return authResult{outcome: authNotRequired}, nil
	}
	if err := a.seed(ctx); err != nil {
		return authResult{}, err
	}
	dom, err := a.dir.Domain(ctx, req.domain)
	switch {
	case errors.Is(err, ErrDomainNotFound):
		return authResult{outcome: authNotRequired}, nil
	case err != nil:
		return authResult{}, fmt.Errorf("reading domain %q: %w", req.domain, err)
	case !dom.AuthRequired:
		return authResult{outcome: authNotRequired}, nil
	}
	challenge := func(stale bool) authResult {
		r := authResult{outcome: authChallenge}
		if stale {
			r.outcome = authStale
		}
		nonce := a.nonces.issue(dom.Realm, now)
		for _, alg := range a.algorithms {
			v := `Digest realm="` + dom.Realm + `", nonce="` + nonce + `", algorithm=` + alg + `, qop="auth"`
			if stale {
				v += ", stale=true"
			}
			r.challenges = append(r.challenges, &registrarv1.Challenge{Value: v})
		}
		return r
	}
	c := req.creds
	if c == nil || c.GetUsername() == "" || c.GetRealm() != dom.Realm || c.GetResponse() == "" {
		return challenge(false), nil
	}
	alg := canonicalAlgorithm(c.GetAlgorithm())
	if alg == "" || !slices.Contains(a.algorithms, alg) || !strings.EqualFold(c.GetQop(), "auth") || c.GetCnonce() == "" {
		return challenge(false), nil
	}
	nc, err := strconv.ParseUint(c.GetNc(), 16, 32)
	if err != nil || len(c.GetNc()) != 8 || nc == 0 {
		return challenge(false), nil
	}
	state, until := a.nonces.check(c.GetNonce(), dom.Realm, now)
	if state == nonceInvalid {
		return challenge(false), nil
	}
	if req.requestURI != "" && !sameDigestURI(c.GetUri(), req.requestURI) {
		return challenge(false), nil
	}
	user, err := a.dir.User(ctx, dom.Name, c.GetUsername())
	switch {
	case errors.Is(err, ErrUserNotFound):
		// Do the same work as for a known user, so that timing does not
		// tell unknown users apart.
		user = User{HA1MD5: strings.Repeat("0", 32), HA1SHA256: strings.Repeat("0", 64)}
	case err != nil:
		return authResult{}, fmt.Errorf("reading user %q of %q: %w", c.GetUsername(), dom.Name, err)
	}
	h1 := user.HA1MD5
	if alg == AlgorithmSHA256 {
		h1 = user.HA1SHA256
	}
	want := digestResponse(alg, h1, c.GetNonce(), c.GetNc(), c.GetCnonce(), c.GetQop(), req.method, c.GetUri())
	ok := subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(c.GetResponse()))) == 1
	if !ok || h1 == "" || err != nil {
		return challenge(false), nil
	}
	if state == nonceStale {
		return challenge(true), nil
	}
	fresh, err := a.counts.Advance(ctx, c.GetNonce(), uint32(nc), until.Sub(now))
	if err != nil {
		return authResult{}, fmt.Errorf("checking the nonce count: %w", err)
	}
	if !fresh {
		return challenge(true), nil
	}
	if req.user != user.Username {
		return authResult{outcome: authForbidden}, nil
	}
	return authResult{outcome: authOK, identity: "sip:" + user.Username + "@" + dom.Name}, nil
}

// digestResponse computes the request-digest with qop (RFC 7616 section
// 3.4.1): H(HA1:nonce:nc:cnonce:qop:H(method:uri)).
func digestResponse(alg, ha1, nonce, nc, cnonce, qop, method, uri string) string {
	ha2 := hashHex(alg, method+":"+uri)
	return hashHex(alg, ha1+":"+nonce+":"+nc+":"+cnonce+":"+strings.ToLower(qop)+":"+ha2)
}

// sameDigestURI compares the digest-uri with the Request-URI: as SIP URIs
// when both parse (user and host; the port and scheme are left out, as
// clients differ on them: some put the address they sent to), else as
// strings. The response hashes the digest-uri, so this only stops
// credentials from being reused for another target.
func sameDigestURI(digestURI, requestURI string) bool {
	a, errA := parseURI(digestURI)
	b, errB := parseURI(requestURI)
	if errA != nil || errB != nil {
		return strings.TrimSpace(digestURI) == strings.TrimSpace(requestURI)
	}
	return a.user == b.user && a.host == b.host
}

// registerAuth authenticates a REGISTER for aor; it returns the answer
// when the REGISTER must be refused (401 or 403), nil to go on.
func (r *Registrar) registerAuth(ctx context.Context, req *registrarv1.RegisterRequest, aor string) (*registrarv1.RegisterResponse, string, error) {
	u, _ := parseURI(aor)
	res, err := r.auth.check(ctx, authRequest{
		method:     "REGISTER",
		requestURI: req.GetRequestUri(),
		user:       u.user,
		domain:     u.host,
		creds:      req.GetCredentials(),
		trusted:    req.GetTrusted(),
	}, r.now())
	if err != nil {
		return nil, "", err
	}
	switch res.outcome {
	case authChallenge, authStale:
		resp := reject(401, reasonUnauthorized)
		resp.Challenges = res.challenges
		return resp, reasonAuthChallenge, nil
	case authForbidden:
		return reject(403, reasonForbidden), reasonAuthForbidden, nil
	}
	return nil, "", nil
}

// Authenticate checks the Proxy-Authorization credentials of a request
// other than REGISTER against the From user: 200 with the identity when
// they are good (or not needed: unknown domain, or a domain without
// auth_required), 407 with challenges when missing, wrong or stale, 403
// when they belong to another user than From.
func (r *Registrar) Authenticate(ctx context.Context, req *registrarv1.AuthenticateRequest) (*registrarv1.AuthenticateResponse, error) {
	from, err := parseURI(req.GetFromUri())
	if err != nil || from.user == "" {
		// A From without user cannot be authenticated as anyone: challenge
		// (or pass, for a domain that needs no auth) by its host.
		from.user = ""
	}
	res, err := r.auth.check(ctx, authRequest{
		method:     req.GetMethod(),
		requestURI: req.GetRequestUri(),
		user:       from.user,
		domain:     from.host,
		creds:      req.GetCredentials(),
	}, r.now())
	if err != nil {
		r.log.Warn("authenticate failed", "from", req.GetFromUri(), "err", err)
		return nil, toStatus(err)
	}
	switch res.outcome {
	case authChallenge, authStale:
		return &registrarv1.AuthenticateResponse{Code: 407, Reason: reasonProxyAuth, Challenges: res.challenges}, nil
	case authForbidden:
		return &registrarv1.AuthenticateResponse{Code: 403, Reason: reasonForbidden}, nil
	}
	return &registrarv1.AuthenticateResponse{Code: 200, Reason: reasonOK, Identity: res.identity}, nil
}

// PutDomain adds or updates a served domain. Changing a realm invalidates
// the HA1 hashes of its users, which then need their passwords again.
func (r *Registrar) PutDomain(ctx context.Context, req *registrarv1.PutDomainRequest) (*registrarv1.PutDomainResponse, error) {
	if err := r.auth.seed(ctx); err != nil {
		return nil, toStatus(err)
	}
	d := req.GetDomain()
	name := strings.ToLower(strings.TrimSpace(d.GetName()))
	if name == "" || strings.ContainsAny(name, " \t;@<>\"") {
		return nil, toStatus(fmt.Errorf("%w: %w: domain name %q", errInvalidArgument, errInvalidAuthData, d.GetName()))
	}
	if strings.ContainsAny(d.GetRealm(), "\"\\\r\n") {
		return nil, toStatus(fmt.Errorf("%w: %w: realm %q", errInvalidArgument, errInvalidAuthData, d.GetRealm()))
	}
	dom := Domain{Name: name, Realm: d.GetRealm(), AuthRequired: d.GetAuthRequired()}
	if dom.Realm == "" {
		dom.Realm = name
	}
	if err := r.auth.dir.PutDomain(ctx, dom); err != nil {
		return nil, toStatus(fmt.Errorf("putting domain %q: %w", name, err))
	}
	r.log.Info("domain put", "domain", name, "realm", dom.Realm, "auth_required", dom.AuthRequired)
	return &registrarv1.PutDomainResponse{}, nil
}

// DeleteDomain removes a domain and its users.
func (r *Registrar) DeleteDomain(ctx context.Context, req *registrarv1.DeleteDomainRequest) (*registrarv1.DeleteDomainResponse, error) {
	if err := r.auth.seed(ctx); err != nil {
		return nil, toStatus(err)
	}
	if err := r.auth.dir.DeleteDomain(ctx, req.GetName()); err != nil {
		return nil, toStatus(fmt.Errorf("deleting domain %q: %w", req.GetName(), err))
	}
	r.log.Info("domain deleted", "domain", req.GetName())
	return &registrarv1.DeleteDomainResponse{}, nil
}

// ListDomains lists the served domains.
func (r *Registrar) ListDomains(ctx context.Context, _ *registrarv1.ListDomainsRequest) (*registrarv1.ListDomainsResponse, error) {
	if err := r.auth.seed(ctx); err != nil {
		return nil, toStatus(err)
	}
	ds, err := r.auth.dir.Domains(ctx)
	if err != nil {
		return nil, toStatus(fmt.Errorf("listing domains: %w", err))
	}
	resp := &registrarv1.ListDomainsResponse{}
	for _, d := range ds {
		resp.Domains = append(resp.Domains, &registrarv1.Domain{Name: d.Name, Realm: d.Realm, AuthRequired: d.AuthRequired})
	}
	return resp, nil
}

// PutUser adds a subscriber or changes its credentials: a password is
// hashed with the domain's realm and not kept.
func (r *Registrar) PutUser(ctx context.Context, req *registrarv1.PutUserRequest) (*registrarv1.PutUserResponse, error) {
	if err := r.auth.seed(ctx); err != nil {
		return nil, toStatus(err)
	}
	u := req.GetUser()
	cfg := Config{
		Domains: []DomainConfig{{Name: u.GetDomain()}},
		Users:   []UserConfig{{Username: u.GetUsername(), Domain: u.GetDomain(), Password: u.GetPassword(), HA1MD5: u.GetHa1Md5(), HA1SHA256: u.GetHa1Sha256()}},
	}
	if errs := cfg.validateAuthUsersOnly(); len(errs) > 0 {
		return nil, toStatus(fmt.Errorf("%w: %w: %w", errInvalidArgument, errInvalidAuthData, errors.Join(errs...)))
	}
	dom, err := r.auth.dir.Domain(ctx, u.GetDomain())
	if err != nil {
		if errors.Is(err, ErrDomainNotFound) {
			err = fmt.Errorf("%w: %w", errInvalidArgument, err)
		}
		return nil, toStatus(fmt.Errorf("putting user %q: %w", u.GetUsername(), err))
	}
	user := userFromConfig(u.GetUsername(), dom.Name, dom.Realm, u.GetPassword(), u.GetHa1Md5(), u.GetHa1Sha256())
	if err := r.auth.dir.PutUser(ctx, user); err != nil {
		if errors.Is(err, ErrDomainNotFound) {
			err = fmt.Errorf("%w: %w", errInvalidArgument, err)
		}
		return nil, toStatus(fmt.Errorf("putting user %q: %w", u.GetUsername(), err))
	}
	r.log.Info("user put", "user", user.Username, "domain", user.Domain)
	return &registrarv1.PutUserResponse{}, nil
}

// DeleteUser removes a subscriber; its bindings stay until they expire.
func (r *Registrar) DeleteUser(ctx context.Context, req *registrarv1.DeleteUserRequest) (*registrarv1.DeleteUserResponse, error) {
	if err := r.auth.seed(ctx); err != nil {
		return nil, toStatus(err)
	}
	if err := r.auth.dir.DeleteUser(ctx, req.GetDomain(), req.GetUsername()); err != nil {
		return nil, toStatus(fmt.Errorf("deleting user %q: %w", req.GetUsername(), err))
	}
	r.log.Info("user deleted", "user", req.GetUsername(), "domain", req.GetDomain())
	return &registrarv1.DeleteUserResponse{}, nil
}

// ListUsers lists a domain's subscribers, without secrets.
func (r *Registrar) ListUsers(ctx context.Context, req *registrarv1.ListUsersRequest) (*registrarv1.ListUsersResponse, error) {
	if err := r.auth.seed(ctx); err != nil {
		return nil, toStatus(err)
	}
	us, err := r.auth.dir.Users(ctx, req.GetDomain())
	if err != nil {
		if errors.Is(err, ErrDomainNotFound) {
			err = fmt.Errorf("%w: %w", errInvalidArgument, err)
		}
		return nil, toStatus(fmt.Errorf("listing users of %q: %w", req.GetDomain(), err))
	}
	resp := &registrarv1.ListUsersResponse{}
	for _, u := range us {
		resp.Users = append(resp.Users, &registrarv1.User{Username: u.Username, Domain: u.Domain})
	}
	return resp, nil
}

// validateAuthUsersOnly checks the user entries of c (one domain, given).
func (c Config) validateAuthUsersOnly() []error {
	c.Auth.setDefaults()
	return c.validateAuth()
}
