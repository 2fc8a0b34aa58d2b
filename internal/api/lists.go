package api

import (
	"context"
	"net/http"
	"net/url"
)

// Apps lists every app with its active deployment.
func (c *Client) Apps(ctx context.Context) ([]App, error) {
	var out []App
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/apps", nil, &out)
	return out, err
}

// Deployments lists an app's last 100 deployments, newest first.
func (c *Client) Deployments(ctx context.Context, app string) ([]Deployment, error) {
	var out []Deployment
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/apps/"+url.PathEscape(app)+"/deployments", nil, &out)
	return out, err
}

// Revisions lists an app's revisions, newest first.
func (c *Client) Revisions(ctx context.Context, app string) ([]Revision, error) {
	var out []Revision
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/apps/"+url.PathEscape(app)+"/revisions", nil, &out)
	return out, err
}
