// Package auth is the API's authentication: bearer tokens with a role each.
// A token's secret is shown once, when it is made; the store keeps only its
// SHA-256, so a copy of the database (a backup) holds no usable token.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"bluegreen/internal/audit"
	"bluegreen/internal/store"
)

// Role is what a token may do. Each role can do everything the one before
// it can: viewer < deployer < admin.
type Role string

// Roles.
const (
	// Viewer reads: apps, revisions, deployments, events, instances and
	// their logs, params (but not the values of secure ones).
	Viewer Role = "viewer"
	// Deployer also uploads revisions, deploys, promotes, aborts, rolls
	// back, writes params and reads secure values.
	Deployer Role = "deployer"
	// Admin also creates, lists and revokes tokens.
	Admin Role = "admin"
)

// Roles lists the roles from the weakest to the strongest.
var Roles = []Role{Viewer, Deployer, Admin}

func (r Role) rank() int {
	for i, x := range Roles {
		if x == r {
			return i + 1
		}
	}
	return 0
}

// Allows reports whether a token of role r may do what needs role need.
func (r Role) Allows(need Role) bool { return r.rank() > 0 && r.rank() >= need.rank() }

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.rank() > 0 {
		return r, nil
	}
	return "", fmt.Errorf("role %q: want viewer, deployer or admin", s)
}

// SecretPrefix starts every token secret, so that a leaked one is easy to
// recognise (and to search for in logs and repositories).
const SecretPrefix = "bg_"

// secretBytes is the randomness in a secret: 256 bits.
const secretBytes = 32

// NewSecret returns a fresh secret: "bg_" and 32 random bytes in base64url.
func NewSecret() string {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err))
	}
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// Hash is what the store keeps of a secret.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// ValidateName checks a token's name: what a person reads in listings and
// in refusals, e.g. "ci" or "alice@laptop".
func ValidateName(name string) error {
	if name == "" {
		return errors.New("token name is empty: name the token after who or what uses it, e.g. ci")
	}
	if !nameRE.MatchString(name) {
		return fmt.Errorf("token name %q: want 1-64 characters of A-Z, a-z, 0-9, _, ., @ and -, starting with a letter or digit", name)
	}
	return nil
}

// Errors of Authenticate and Revoke.
var (
	// ErrInvalidToken is a secret that is malformed, unknown or revoked;
	// which of them is deliberately not said.
	ErrInvalidToken = errors.New("invalid or revoked token")
	// ErrLastAdmin refuses to revoke the only active admin token, which
	// would leave nobody able to make tokens.
	ErrLastAdmin = errors.New("it is the last active admin token: create another admin token first")
	// ErrCSRF refuses a state-changing request authenticated by a browser
	// session (the dashboard's cookie) that does not carry the session's
	// CSRF token: another site may have sent it.
	ErrCSRF = errors.New("a request that changes state with a session cookie needs the session's X-Bluegreen-CSRF header; reload the dashboard")
)

// touchEvery bounds how often a token's last use is written: a write per
// request would cost an fsync each.
const touchEvery = time.Minute

// Tokens makes, checks and revokes tokens in a store.
type Tokens struct {
	st  *store.Store
	now func() time.Time
}

// New returns the tokens of st; now is the clock (time.Now when nil).
func New(st *store.Store, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{st: st, now: now}
}

// Create makes a token and returns it with its secret, which is not kept.
func (t *Tokens) Create(ctx context.Context, name string, role Role) (store.Token, string, error) {
	var tok store.Token
	var secret string
	err := t.st.Update(ctx, func(tx *store.Tx) (err error) {
		tok, secret, err = create(ctx, tx, name, role)
		return err
	})
	return tok, secret, err
}

func create(ctx context.Context, tx *store.Tx, name string, role Role) (store.Token, string, error) {
	if err := ValidateName(name); err != nil {
		return store.Token{}, "", err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return store.Token{}, "", err
	}
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		return store.Token{}, "", fmt.Errorf("reading random bytes: %w", err)
	}
	secret := NewSecret()
	tok, err := tx.InsertToken(ctx, store.Token{ID: "t-" + hex.EncodeToString(id), Name: name, Role: string(role), Hash: Hash(secret)})
	if err != nil {
		return store.Token{}, "", err
	}
	msg, fields := audit.Record(ctx, fmt.Sprintf("token %s (%s) created with role %s", tok.ID, name, role),
		map[string]any{"id": tok.ID, "name": name, "role": string(role)})
	_, err = tx.AppendEvent(ctx, store.Event{Kind: "token.create", Message: msg, Fields: fields})
	return tok, secret, err
}

// Authenticate returns the active token whose secret this is, or
// ErrInvalidToken.
func (t *Tokens) Authenticate(ctx context.Context, secret string) (store.Token, error) {
	if !strings.HasPrefix(secret, SecretPrefix) || len(secret) > 256 {
		return store.Token{}, ErrInvalidToken
	}
	tok, err := t.st.TokenByHash(ctx, Hash(secret))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !tok.Active()) {
		return store.Token{}, ErrInvalidToken
	}
	if err != nil {
		return store.Token{}, err
	}
	if now := t.now(); now.Sub(tok.LastUsedAt) >= touchEvery {
		// Best effort: a failure to note the use must not refuse the call.
		if err := t.st.TouchToken(ctx, tok.ID, now); err == nil {
			tok.LastUsedAt = now
		}
	}
	return tok, nil
}

// List returns every token, revoked ones included, without secrets.
func (t *Tokens) List(ctx context.Context) ([]store.Token, error) { return t.st.ListTokens(ctx) }

// Revoke revokes a token for good. The last active admin token cannot be
// revoked (ErrLastAdmin).
func (t *Tokens) Revoke(ctx context.Context, id string) (store.Token, error) {
	var out store.Token
	err := t.st.Update(ctx, func(tx *store.Tx) error {
		tok, err := tx.GetToken(ctx, id)
		if err != nil {
			return err
		}
		if Role(tok.Role) == Admin && tok.Active() {
			n, err := tx.CountActiveTokens(ctx, string(Admin))
			if err != nil {
				return err
			}
			if n <= 1 {
				return fmt.Errorf("revoking token %s (%s): %w", id, tok.Name, ErrLastAdmin)
			}
		}
		if out, err = tx.RevokeToken(ctx, id); err != nil {
			return err
		}
		msg, fields := audit.Record(ctx, fmt.Sprintf("token %s (%s) revoked", id, tok.Name),
			map[string]any{"id": id, "name": tok.Name, "role": tok.Role})
		_, err = tx.AppendEvent(ctx, store.Event{Kind: "token.revoke", Message: msg, Fields: fields})
		return err
	})
	return out, err
}
