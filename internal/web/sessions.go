package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"bluegreen/internal/auth"
	"bluegreen/internal/store"
)

// CookieName is the session cookie. It holds a random session ID, never a
// token: the token a person logs in with stays on the server's side.
const CookieName = "bg_session"

// CSRFHeader carries the session's CSRF token on every request that
// changes state; the dashboard's pages hold it, other sites cannot read it.
const CSRFHeader = "X-Bluegreen-CSRF"

// Defaults of session lifetimes.
const (
	DefaultIdle = 12 * time.Hour // a session unused this long ends
	DefaultMax  = 7 * 24 * time.Hour
)

// MaxSessionsPerToken bounds the sessions one token has at a time: a login
// past it ends the token's least recently used session. People log in from
// a few browsers; a script logging in over and over must not fill the
// server's memory.
const MaxSessionsPerToken = 10

// session is one logged-in browser.
type session struct {
	tokenID  string
	csrf     string
	created  time.Time
	lastSeen time.Time
}

// Sessions are the dashboard's logins, in memory: a restart of the server
// logs everybody out. Each maps a random ID (the cookie) to the token the
// person logged in with; the token is checked again on every request, so
// revoking it ends its sessions at once, and its role is always current.
type Sessions struct {
	st        *store.Store
	now       func() time.Time
	idle, max time.Duration

	mu   sync.Mutex
	byID map[string]*session
}

// NewSessions returns an empty set of sessions over the store's tokens.
func NewSessions(st *store.Store, now func() time.Time, idle, max time.Duration) *Sessions {
	if now == nil {
		now = time.Now
	}
	if idle <= 0 {
		idle = DefaultIdle
	}
	if max <= 0 {
		max = DefaultMax
	}
	return &Sessions{st: st, now: now, idle: idle, max: max, byID: map[string]*session{}}
}

func randomString() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for the token and returns its ID.
func (s *Sessions) create(tok store.Token) (string, *session) {
	now := s.now()
	id := randomString()
	sess := &session{tokenID: tok.ID, csrf: randomString(), created: now, lastSeen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	mine := 0
	for k, x := range s.byID {
		switch {
		case s.expired(x, now):
			delete(s.byID, k)
		case x.tokenID == tok.ID:
			mine++
		}
	}
	for ; mine >= MaxSessionsPerToken; mine-- {
		s.endLeastUsed(tok.ID)
	}
	s.byID[id] = sess
	return id, sess
}

// endLeastUsed ends the token's session unused for the longest; s.mu is
// held.
func (s *Sessions) endLeastUsed(tokenID string) {
	var oldest string
	var at time.Time
	for k, x := range s.byID {
		if x.tokenID == tokenID && (oldest == "" || x.lastSeen.Before(at)) {
			oldest, at = k, x.lastSeen
		}
	}
	delete(s.byID, oldest)
}

func (s *Sessions) expired(x *session, now time.Time) bool {
	return now.Sub(x.lastSeen) > s.idle || now.Sub(x.created) > s.max
}

// end forgets a session.
func (s *Sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// lookup finds the request's session and its token. ok is false without a
// session cookie; auth.ErrInvalidToken means the session is unknown or
// expired, or its token was revoked.
func (s *Sessions) lookup(ctx context.Context, r *http.Request) (id string, sess session, tok store.Token, ok bool, err error) {
	c, cerr := r.Cookie(CookieName)
	if cerr != nil || c.Value == "" {
		return "", session{}, store.Token{}, false, nil
	}
	id = c.Value
	now := s.now()
	s.mu.Lock()
	x := s.byID[id]
	if x != nil && s.expired(x, now) {
		delete(s.byID, id)
		x = nil
	}
	if x != nil {
		x.lastSeen = now
		sess = *x
	}
	s.mu.Unlock()
	if x == nil {
		return id, sess, tok, true, auth.ErrInvalidToken
	}
	tok, err = s.st.GetToken(ctx, sess.tokenID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !tok.Active()) {
		s.end(id)
		return id, sess, store.Token{}, true, auth.ErrInvalidToken
	}
	if err != nil {
		return id, sess, tok, true, fmt.Errorf("reading the session's token: %w", err)
	}
	return id, sess, tok, true, nil
}

// SessionToken implements api.SessionAuth. A request that may change state
// (anything but GET, HEAD and OPTIONS) must carry the session's CSRF token
// in the X-Bluegreen-CSRF header.
func (s *Sessions) SessionToken(r *http.Request) (store.Token, bool, error) {
	_, sess, tok, ok, err := s.lookup(r.Context(), r)
	if !ok || err != nil {
		return tok, ok, err
	}
	if !safeMethod(r.Method) && !sameSecret(r.Header.Get(CSRFHeader), sess.csrf) {
		return tok, true, auth.ErrCSRF
	}
	return tok, true, nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func sameSecret(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// setCookie sets the session cookie: HttpOnly (scripts cannot read it),
// SameSite=Strict (other sites' pages do not send it), Secure when the
// dashboard is served over TLS. It has no expiry: the browser forgets it
// when it closes.
func setCookie(w http.ResponseWriter, r *http.Request, id string, secure bool) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secure || r.TLS != nil,
	})
}

// clearCookie removes the session cookie.
func clearCookie(w http.ResponseWriter, r *http.Request, secure bool) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secure || r.TLS != nil,
	})
}
