package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"bluegreen/internal/auth"
	"bluegreen/internal/params"
)

// Param is one version of a parameter. Value is absent where values are
// not shown (history); Redacted says a secure value was withheld.
type Param struct {
	Name      string    `json:"name"`
	Version   int64     `json:"version"`
	Type      string    `json:"type"`
	Value     *string   `json:"value,omitempty"`
	Redacted  bool      `json:"redacted,omitempty"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// PutParamRequest writes a new version of a parameter.
type PutParamRequest struct {
	Value  *string `json:"value"`
	Secure bool    `json:"secure,omitempty"`
	// ExpectVersion, when set, makes the write fail with 409 unless it is
	// the latest version.
	ExpectVersion int64 `json:"expect_version,omitempty"`
}

func paramOf(i params.Info) Param {
	return Param{Name: i.Name, Version: i.Version, Type: string(i.Type), CreatedBy: i.CreatedBy, CreatedAt: i.CreatedAt}
}

func redacted(p Param) Param {
	v := params.Redacted
	p.Value, p.Redacted = &v, true
	return p
}

// paramName is the param the {name...} wildcard names: the URL path after
// /api/v1/params is the param's name.
func paramName(r *http.Request) (string, error) {
	name := "/" + r.PathValue("name")
	if err := params.ValidateName(name); err != nil {
		return "", &Error{http.StatusBadRequest, CodeInvalid, err.Error()}
	}
	return name, nil
}

func (s *Server) putParam(w http.ResponseWriter, r *http.Request) {
	name, err := paramName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var req PutParamRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Value == nil {
		writeError(w, &Error{http.StatusBadRequest, CodeInvalid, `request body: "value" is required (use "" for an empty value)`})
		return
	}
	if req.ExpectVersion < 0 {
		writeError(w, &Error{http.StatusBadRequest, CodeInvalid, `request body: "expect_version" must be a version number`})
		return
	}
	typ := params.TypeString
	if req.Secure {
		typ = params.TypeSecure
	}
	info, err := s.Params.Put(r.Context(), name, typ, *req.Value, params.WriteOptions{CreatedBy: caller(r.Context()).Name, ExpectVersion: req.ExpectVersion})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, paramOf(info))
}

// getParam answers the latest version of a param, or ?version=N. The value
// of a secure param is for deployers and admins: a viewer gets 403.
func (s *Server) getParam(w http.ResponseWriter, r *http.Request) {
	name, err := paramName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var version int64
	if v := r.URL.Query().Get("version"); v != "" {
		if version, err = strconv.ParseInt(v, 10, 64); err != nil || version <= 0 {
			writeError(w, &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("query parameter version=%q: want a version number (1, 2, …)", v)})
			return
		}
	}
	p, err := s.Params.Get(r.Context(), name, version)
	if err != nil {
		writeError(w, err)
		return
	}
	if p.Type == params.TypeSecure && !callerRole(r.Context()).Allows(auth.Deployer) {
		tok := caller(r.Context())
		writeError(w, &Error{http.StatusForbidden, CodeForbidden, fmt.Sprintf(
			"param %s is secure: reading its value needs a token with role deployer or above; token %s (%s) has role %s",
			name, tok.Name, tok.ID, tok.Role)})
		return
	}
	out := paramOf(p.Info)
	value := p.Value.Reveal()
	out.Value = &value
	writeJSON(w, http.StatusOK, out)
}

// listParams answers the latest version of every live param under
// ?prefix= (all when empty), with values; secure values are redacted for
// every role (GET the param itself to read one).
func (s *Server) listParams(w http.ResponseWriter, r *http.Request) {
	prefix := r.URL.Query().Get("prefix")
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		writeError(w, &Error{http.StatusBadRequest, CodeInvalid, fmt.Sprintf("query parameter prefix=%q: must start with /, e.g. /shop/", prefix)})
		return
	}
	infos, err := s.Params.List(r.Context(), prefix)
	if err != nil {
		writeError(w, err)
		return
	}
	out := []Param{}
	for _, i := range infos {
		p := paramOf(i)
		if i.Type == params.TypeSecure {
			out = append(out, redacted(p))
			continue
		}
		got, err := s.Params.Get(r.Context(), i.Name, i.Version)
		if err != nil {
			writeError(w, err)
			return
		}
		value := got.Value.Reveal()
		p.Value = &value
		out = append(out, p)
	}
	writeJSON(w, http.StatusOK, out)
}

// paramHistory answers every version of a param, oldest first, without
// values; deletions show as versions of type "deleted".
func (s *Server) paramHistory(w http.ResponseWriter, r *http.Request) {
	name, err := paramName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	infos, err := s.Params.History(r.Context(), name)
	if err != nil {
		writeError(w, err)
		return
	}
	out := []Param{}
	for _, i := range infos {
		out = append(out, paramOf(i))
	}
	writeJSON(w, http.StatusOK, out)
}

// deleteParam appends a tombstone: revisions pinned to earlier versions
// still resolve.
func (s *Server) deleteParam(w http.ResponseWriter, r *http.Request) {
	name, err := paramName(r)
	if err != nil {
		writeError(w, err)
		return
	}
	info, err := s.Params.Delete(r.Context(), name, params.WriteOptions{CreatedBy: caller(r.Context()).Name})
	if errors.Is(err, params.ErrDeleted) {
		err = &Error{http.StatusNotFound, CodeNotFound, fmt.Sprintf("param %s: already deleted", name)}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, paramOf(info))
}
