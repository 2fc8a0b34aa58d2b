package routerproc

import (
	"context"
	"net/http"
	"net/url"

	"bluegreen/internal/router"
)

// TLS returns how the router serves the certificate of each host of its
// TLS listeners.
func (c *Client) TLS(ctx context.Context) ([]router.CertStatus, error) {
	var out struct {
		Certificates []router.CertStatus `json:"certificates"`
	}
	err := c.do(ctx, http.MethodGet, "/tls", nil, &out)
	return out.Certificates, err
}

// ReloadTLS has the router read its certificate files again.
func (c *Client) ReloadTLS(ctx context.Context) error {
	var out struct{}
	return c.do(ctx, http.MethodPost, "/tls/reload", nil, &out)
}

// SetChallenge has the router answer the ACME HTTP-01 challenge of token.
func (c *Client) SetChallenge(ctx context.Context, token, keyAuth string) error {
	var out struct{}
	return c.do(ctx, http.MethodPut, "/acme/challenges/"+url.PathEscape(token), []byte(keyAuth), &out)
}

// DeleteChallenge has the router forget a challenge.
func (c *Client) DeleteChallenge(ctx context.Context, token string) error {
	var out struct{}
	return c.do(ctx, http.MethodDelete, "/acme/challenges/"+url.PathEscape(token), nil, &out)
}
