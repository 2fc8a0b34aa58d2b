package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

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

// guard lets a request through to h only with an active token whose role
// allows need. 401 says the token is missing or not valid (never which of
// unknown or revoked); 403 says which role is needed and which one the
// token has.
func (s *Server) guard(pattern string, need auth.Role, h http.HandlerFunc) http.HandlerFunc {
	if need == public {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		secret, err := bearer(r)
		if err != nil {
			unauthorized(w, err.Error(), false)
			return
		}
		tok, err := s.Tokens.Authenticate(r.Context(), secret)
		if errors.Is(err, auth.ErrInvalidToken) {
			unauthorized(w, "the token is not valid (unknown or revoked)", true)
			return
		}
		if err != nil {
			writeError(w, fmt.Errorf("checking the token: %w", err))
			return
		}
		if !auth.Role(tok.Role).Allows(need) {
			writeError(w, &Error{http.StatusForbidden, CodeForbidden, fmt.Sprintf(
				"%s needs a token with role %s or above; token %s (%s) has role %s", pattern, need, tok.Name, tok.ID, tok.Role)})
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
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
