package api

import "time"

// CertificateStatus is one HTTPS certificate of an app: for a host whose
// certificate comes from ACME, where its order stands; for one from files,
// whether the router can serve it.
type CertificateStatus struct {
	Host string `json:"host"`
	// Source is "acme" or "file".
	Source string `json:"source"`
	// State is "valid", "ordering", "waiting", "failed" (acme), or
	// "valid" and "unusable" (file).
	State    string    `json:"state"`
	NotAfter time.Time `json:"not_after,omitzero"`
	RenewAt  time.Time `json:"renew_at,omitzero"`
	Error    string    `json:"error,omitempty"`
	NextTry  time.Time `json:"next_try,omitzero"`
}
