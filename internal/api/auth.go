package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"bluegreen/internal/audit"
	"bluegreen/internal/auth"
	"bluegreen/internal/store"
)

// public marks a route that needs no token.
const public auth.Role = ""

// route is one API route and the weakest role allowed to call it.
type route struct {
	pattern string
	role    auth.Role
	handler http.HandlerFunc
}

// howToGetToken ends every 401: what a person does next.
const howToGetToken = "send \"Authorization: Bearer TOKEN\" (bluegreen commands: --token or $BLUEGREEN_TOKEN); " +
	"the server writes an admin token to admin.token in its data directory at first start, " +
	"and `bluegreen token create` makes more"

type tokenKey struct{}

// caller returns the token that authenticated the request (the zero Token
// on a public route).
func caller(ctx context.Context) store.Token {
	t, _ := ctx.Value(tokenKey{}).(store.Token)
	return t
}

// callerRole is the role of the request's token.
func callerRole(ctx context.Context) auth.Role { return auth.Role(caller(ctx).Role) }

// SessionAuth authenticates requests by a browser session: the dashboard
// logs a person in with a token and keeps a session cookie, so that its
// pages can call the API without handling the token.
type SessionAuth interface {
	// SessionToken returns the active token behind the request's session
	// cookie; ok is false when the request carries none. An error refuses
	// the request: auth.ErrInvalidToken (the session expired, or its token
	// was revoked) answers 401, auth.ErrCSRF 403.
	SessionToken(r *http.Request) (tok store.Token, ok bool, err error)
}

// guard lets a request through to h only with an active token whose role
// allows need. 401 says the token is missing or not valid (never which of
// unknown or revoked); 403 says which role is needed and which one the
// token has. A request without an Authorization header may come from the
// dashboard: its session cookie stands for the token it logged in with.
func (s *Server) guard(pattern string, need auth.Role, h http.HandlerFunc) http.HandlerFunc {
	if need == public {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		if !auth.Role(tok.Role).Allows(need) {
			writeError(w, &Error{http.StatusForbidden, CodeForbidden, fmt.Sprintf(
				"%s needs a token with role %s or above; token %s (%s) has role %s", pattern, need, tok.Name, tok.ID, tok.Role)})
			return
		}
		// Who asked is recorded with what they asked for: the engine and
		// the API write the actor into the events of their actions.
		via := ""
		if r.Header.Get("Authorization") == "" {
			via = audit.ViaDashboard // authenticated by a session cookie
		}
		ctx := audit.WithActor(context.WithValue(r.Context(), tokenKey{}, tok), audit.FromRequest(r, tok.Name, tok.ID, via))
		h(w, r.WithContext(ctx))
	}
}

// authenticate finds the request's token (bearer, else session) or answers
// the refusal and returns false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (store.Token, bool) {
	if r.Header.Get("Authorization") == "" && s.Sessions != nil {
		tok, ok, err := s.Sessions.SessionToken(r)
		switch {
		case !ok:
			// No session either: the bearer check below says what is missing.
		case errors.Is(err, auth.ErrInvalidToken):
			unauthorized(w, "the dashboard session has expired or its token was revoked; log in again", true)
			return tok, false
		case errors.Is(err, auth.ErrCSRF):
			writeError(w, &Error{http.StatusForbidden, CodeForbidden, err.Error()})
			return tok, false
		case err != nil:
			writeError(w, fmt.Errorf("checking the session: %w", err))
			return tok, false
		default:
			return tok, true
		}
	}
	if r.Header.Get("Authorization") == "" {
		unauthorized(w, "this API needs a token", false)
		return store.Token{}, false
	}
	// A request that brings a credential is a guess until it is checked:
	// an address that guessed wrong too often waits before the next one.
	remote := auth.RemoteKey(r)
	if ok, wait := s.Failures.Allow(remote); !ok {
		secs := auth.RetryAfter(wait)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, &Error{http.StatusTooManyRequests, CodeTooManyRequests, fmt.Sprintf(
			"too many failed authentications from %s; try again in %d seconds", remote, secs)})
		return store.Token{}, false
	}
	secret, err := bearer(r)
	if err != nil {
		s.failedAuth(r, remote, err.Error())
		unauthorized(w, err.Error(), false)
		return store.Token{}, false
	}
	tok, err := s.Tokens.Authenticate(r.Context(), secret)
	if errors.Is(err, auth.ErrInvalidToken) {
		s.failedAuth(r, remote, "unknown or revoked token")
		unauthorized(w, "the token is not valid (unknown or revoked)", true)
		return tok, false
	}
	if err != nil {
		writeError(w, fmt.Errorf("checking the token: %w", err))
		return tok, false
	}
	return tok, true
}

// failedAuth logs a refused credential, by remote address and never by
// what was sent, and charges it to the address.
func (s *Server) failedAuth(r *http.Request, remote, why string) {
	s.log().Warn("API call with a credential that is not valid", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "reason", why)
	if s.Failures.Fail(remote) {
		_, wait := s.Failures.Allow(remote)
		s.log().Warn("too many failed authentications; refusing this address's attempts for a while", "remote", remote, "retry_after", auth.RetryAfter(wait))
	}
}

// bearer reads the secret of an "Authorization: Bearer SECRET" header.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", errors.New("this API needs a token")
	}
	scheme, secret, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("the Authorization header uses scheme %q; this API takes Bearer tokens", scheme)
	}
	if secret = strings.TrimSpace(secret); secret == "" {
		return "", errors.New("the Authorization header has no token after Bearer")
	}
	return secret, nil
}

func unauthorized(w http.ResponseWriter, why string, invalid bool) {
	challenge := `Bearer realm="bluegreen"`
	if invalid {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, &Error{http.StatusUnauthorized, CodeUnauthorized, why + ": " + howToGetToken})
}
