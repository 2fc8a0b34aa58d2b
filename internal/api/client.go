package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client calls the API of a bluegreen server.
type Client struct {
	// Base is the server's URL, e.g. "http://127.0.0.1:7070".
	Base string
	// Token, when set, is sent as "Authorization: Bearer TOKEN".
	Token string
	HTTP  *http.Client // http.DefaultClient when nil
}

// NewClient returns a client of the server at base ("127.0.0.1:7070" or a URL).
func NewClient(base string) *Client {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{Base: strings.TrimRight(base, "/")}
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	resp, err := c.send(ctx, method, path, body, "Content-Type", contentType)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// send makes one request with the token and the given header pairs (an
// empty value is left out) and returns a 2xx answer for the caller to read
// and close; any other answer becomes an *Error.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader, header ...string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			req.Header.Set(header[i], header[i+1])
		}
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		e := &Error{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Code, e.Message = "http_"+fmt.Sprint(resp.StatusCode), fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
		}
		return nil, e
	}
	return resp, nil
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, body, "application/json", out)
}

// UploadRevision sends a bundle archive (.tar.gz, .tar or .zip) and makes
// a revision of it.
func (c *Client) UploadRevision(ctx context.Context, bundle io.Reader, message string) (Revision, error) {
	var out Revision
	err := c.do(ctx, http.MethodPost, "/api/v1/revisions?message="+url.QueryEscape(message), bundle, "application/octet-stream", &out)
	return out, err
}

// CreateImageRevision makes a revision of app from its live spec with
// another image.
func (c *Client) CreateImageRevision(ctx context.Context, app, image, message string) (Revision, error) {
	var out Revision
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/apps/"+url.PathEscape(app)+"/revisions", ImageRevisionRequest{Image: image, Message: message}, &out)
	return out, err
}

// Deploy starts a deployment of a revision.
func (c *Client) Deploy(ctx context.Context, app string, revision int64) (Deployment, error) {
	var out Deployment
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/apps/"+url.PathEscape(app)+"/deployments", DeployRequest{Revision: revision}, &out)
	return out, err
}

// App reads an app with its active deployment.
func (c *Client) App(ctx context.Context, app string) (App, error) {
	var out App
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/apps/"+url.PathEscape(app), nil, &out)
	return out, err
}

// Deployment reads a deployment.
func (c *Client) Deployment(ctx context.Context, id string) (Deployment, error) {
	var out Deployment
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/deployments/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Instances lists an app's instances.
func (c *Client) Instances(ctx context.Context, app string) ([]Instance, error) {
	var out []Instance
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/apps/"+url.PathEscape(app)+"/instances", nil, &out)
	return out, err
}

// Promote ends what the app's deployment waits for.
func (c *Client) Promote(ctx context.Context, app string, full bool) (Deployment, error) {
	var out Deployment
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/apps/"+url.PathEscape(app)+"/promote", PromoteRequest{Full: full}, &out)
	return out, err
}

// Abort rolls the app's deployment back.
func (c *Client) Abort(ctx context.Context, app, reason string) (Deployment, error) {
	var out Deployment
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/apps/"+url.PathEscape(app)+"/abort", AbortRequest{Reason: reason}, &out)
	return out, err
}

// Rollback goes back to an earlier revision (0: the one before the live one).
func (c *Client) Rollback(ctx context.Context, app string, to int64) (Deployment, error) {
	var out Deployment
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/apps/"+url.PathEscape(app)+"/rollback", RollbackRequest{To: to}, &out)
	return out, err
}

// Events lists events after a sequence number, of an app or a deployment
// (empty: all); wait blocks until there is one.
func (c *Client) Events(ctx context.Context, app, deployment string, after int64, wait bool) ([]Event, error) {
	q := url.Values{}
	if app != "" {
		q.Set("app", app)
	}
	if deployment != "" {
		q.Set("deployment", deployment)
	}
	q.Set("after", fmt.Sprint(after))
	if wait {
		q.Set("wait", "1")
	}
	var out []Event
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/events?"+q.Encode(), nil, &out)
	return out, err
}

// Logs returns the last tail lines of an instance's output (all kept when 0).
func (c *Client) Logs(ctx context.Context, app, id string, tail int) (string, error) {
	rc, err := c.FollowLogs(ctx, app, id, tail, false)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// paramPath is the URL path of a param under base ("/shop/DB" →
// base+"/shop/DB"), each segment escaped.
func paramPath(base, name string) string {
	segs := strings.Split(strings.TrimPrefix(name, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return base + "/" + strings.Join(segs, "/")
}

// PutParam writes a new version of a param; expectVersion > 0 makes it
// fail with a conflict unless that is the latest version.
func (c *Client) PutParam(ctx context.Context, name, value string, secure bool, expectVersion int64) (Param, error) {
	var out Param
	err := c.doJSON(ctx, http.MethodPut, paramPath("/api/v1/params", name), PutParamRequest{Value: &value, Secure: secure, ExpectVersion: expectVersion}, &out)
	return out, err
}

// Param reads a param with its value: the latest version, or version when > 0.
func (c *Client) Param(ctx context.Context, name string, version int64) (Param, error) {
	path := paramPath("/api/v1/params", name)
	if version > 0 {
		path += fmt.Sprintf("?version=%d", version)
	}
	var out Param
	err := c.doJSON(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// Params lists the latest version of every param under prefix (all when
// empty); secure values come redacted.
func (c *Client) Params(ctx context.Context, prefix string) ([]Param, error) {
	path := "/api/v1/params"
	if prefix != "" {
		path += "?prefix=" + url.QueryEscape(prefix)
	}
	var out []Param
	err := c.doJSON(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// ParamHistory lists every version of a param, oldest first, without values.
func (c *Client) ParamHistory(ctx context.Context, name string) ([]Param, error) {
	var out []Param
	err := c.doJSON(ctx, http.MethodGet, paramPath("/api/v1/param-history", name), nil, &out)
	return out, err
}

// DeleteParam deletes a param (a new version of type "deleted").
func (c *Client) DeleteParam(ctx context.Context, name string) (Param, error) {
	var out Param
	err := c.doJSON(ctx, http.MethodDelete, paramPath("/api/v1/params", name), nil, &out)
	return out, err
}

// CreateToken makes a token; the answer's Secret is shown this once.
func (c *Client) CreateToken(ctx context.Context, name, role string) (Token, error) {
	var out Token
	err := c.doJSON(ctx, http.MethodPost, "/api/v1/tokens", CreateTokenRequest{Name: name, Role: role}, &out)
	return out, err
}

// Tokens lists every token, revoked ones included, without secrets.
func (c *Client) Tokens(ctx context.Context) ([]Token, error) {
	var out []Token
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/tokens", nil, &out)
	return out, err
}

// RevokeToken revokes a token by ID.
func (c *Client) RevokeToken(ctx context.Context, id string) (Token, error) {
	var out Token
	err := c.doJSON(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(id), nil, &out)
	return out, err
}
