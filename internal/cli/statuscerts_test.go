package cli

import (
	"strings"
	"testing"
	"time"

	"bluegreen/internal/api"
)

func TestStatusShowsCertificates(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := api.Status{App: api.App{Name: "shop"}, Certificates: []api.CertificateStatus{
		{Host: "shop.example.com", Source: "acme", State: "valid", NotAfter: now.Add(89 * 24 * time.Hour), RenewAt: now.Add(59 * 24 * time.Hour)},
		{Host: "www.shop.example.com", Source: "acme", State: "failed", Error: "the http-01 challenge failed", NextTry: now.Add(4 * time.Minute)},
	}}
	out := renderStatus(st, now)
	for _, want := range []string{
		"certificates:\n",
		"shop.example.com               acme valid     valid until 2026-03-31T00:00:00Z; renewal in 59d\n",
		"www.shop.example.com           acme failed    the http-01 challenge failed; next try in 4m0s\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
