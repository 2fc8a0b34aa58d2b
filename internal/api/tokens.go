package api

import (
	"net/http"
	"time"

	"bluegreen/internal/auth"
	"bluegreen/internal/store"
)

// Token is an API token as the API shows it. Secret is set only in the
// answer to its creation: the server does not keep it.
type Token struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	Secret     string     `json:"token,omitempty"`
}

// CreateTokenRequest makes a token.
type CreateTokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

func tokenOf(t store.Token) Token {
	out := Token{ID: t.ID, Name: t.Name, Role: t.Role, CreatedAt: t.CreatedAt}
	if !t.RevokedAt.IsZero() {
		at := t.RevokedAt
		out.RevokedAt = &at
	}
	if !t.LastUsedAt.IsZero() {
		at := t.LastUsedAt
		out.LastUsedAt = &at
	}
	return out
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req CreateTokenRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := auth.ValidateName(req.Name); err != nil {
		writeError(w, &Error{http.StatusBadRequest, CodeInvalid, "request body: \"name\": " + err.Error()})
		return
	}
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		writeError(w, &Error{http.StatusBadRequest, CodeInvalid, "request body: \"role\": " + err.Error()})
		return
	}
	tok, secret, err := s.Tokens.Create(r.Context(), req.Name, role)
	if err != nil {
		writeError(w, err)
		return
	}
	out := tokenOf(tok)
	out.Secret = secret
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	toks, err := s.Tokens.List(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	out := []Token{}
	for _, t := range toks {
		out = append(out, tokenOf(t))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	tok, err := s.Tokens.Revoke(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, tokenOf(tok))
}
