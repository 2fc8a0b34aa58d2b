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
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
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
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Code, e.Message = "http_"+fmt.Sprint(resp.StatusCode), fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
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
