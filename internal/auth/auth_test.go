package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bluegreen/internal/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		have, need Role
		ok         bool
	}{
		{Viewer, Viewer, true}, {Viewer, Deployer, false}, {Viewer, Admin, false},
		{Deployer, Viewer, true}, {Deployer, Deployer, true}, {Deployer, Admin, false},
		{Admin, Viewer, true}, {Admin, Deployer, true}, {Admin, Admin, true},
		{Role("root"), Viewer, false}, {Role(""), Viewer, false},
	} {
		if got := tc.have.Allows(tc.need); got != tc.ok {
			t.Errorf("%q allows %q = %v, want %v", tc.have, tc.need, got, tc.ok)
		}
	}
	if _, err := ParseRole("root"); err == nil || !strings.Contains(err.Error(), "viewer, deployer or admin") {
		t.Errorf("ParseRole(root) = %v", err)
	}
}

func TestCreateAuthenticateRevoke(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tokens := New(st, func() time.Time { return now })

	tok, secret, err := tokens.Create(ctx, "ci", Deployer)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, SecretPrefix) || len(secret) != len(SecretPrefix)+43 {
		t.Fatalf("secret %q: want bg_ and 43 base64url characters", secret)
	}
	if strings.Contains(string(tok.Hash), secret) {
		t.Fatal("the secret is stored in clear")
	}

	got, err := tokens.Authenticate(ctx, secret)
	if err != nil || got.ID != tok.ID || got.Role != "deployer" || !got.LastUsedAt.Equal(now) {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "bg_", "nonsense", secret + "x", strings.ToUpper(secret)} {
		if _, err := tokens.Authenticate(ctx, bad); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Authenticate(%q) = %v, want ErrInvalidToken", bad, err)
		}
	}

	for _, bad := range []struct {
		name string
		role Role
	}{{"", Viewer}, {"has space", Viewer}, {strings.Repeat("x", 65), Viewer}, {"ok", "root"}} {
		if _, _, err := tokens.Create(ctx, bad.name, bad.role); err == nil {
			t.Errorf("Create(%q, %q) succeeded", bad.name, bad.role)
		}
	}

	if _, err := tokens.Revoke(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Authenticate(ctx, secret); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("revoked token authenticates: %v", err)
	}
	if _, err := tokens.Revoke(ctx, tok.ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("revoking twice: %v, want ErrConflict", err)
	}
	if _, err := tokens.Revoke(ctx, "t-000000000000"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking an unknown token: %v, want ErrNotFound", err)
	}
}

func TestLastAdminCannotBeRevoked(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	tokens := New(st, nil)
	a1, _, err := tokens.Create(ctx, "a1", Admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tokens.Create(ctx, "v", Viewer); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Revoke(ctx, a1.ID); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("revoking the only admin: %v, want ErrLastAdmin", err)
	}
	a2, _, err := tokens.Create(ctx, "a2", Admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Revoke(ctx, a1.ID); err != nil {
		t.Fatalf("revoking one of two admins: %v", err)
	}
	if _, err := tokens.Revoke(ctx, a2.ID); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("revoking the remaining admin: %v, want ErrLastAdmin", err)
	}
}

func TestEnsureAdmin(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	path := filepath.Join(st.Dir(), AdminTokenFile)

	created, err := EnsureAdmin(ctx, st, path)
	if err != nil || !created {
		t.Fatalf("EnsureAdmin = %v, %v", created, err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v, %v; want mode 0600", info, err)
	}
	b, _ := os.ReadFile(path)
	tok, err := New(st, nil).Authenticate(ctx, strings.TrimSpace(string(b)))
	if err != nil || tok.Role != "admin" || tok.Name != "admin" {
		t.Fatalf("the written token: %+v, %v", tok, err)
	}

	// A store with an active token gets no other, and the file is kept.
	if created, err := EnsureAdmin(ctx, st, path); err != nil || created {
		t.Fatalf("second EnsureAdmin = %v, %v", created, err)
	}
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Fatal("admin.token was rewritten")
	}
	if n, _ := st.CountActiveTokens(ctx, ""); n != 1 {
		t.Fatalf("%d active tokens, want 1", n)
	}

	// A file that cannot be written leaves no token behind.
	st2 := openStore(t)
	if _, err := EnsureAdmin(ctx, st2, filepath.Join(st2.Dir(), "missing", AdminTokenFile)); err == nil {
		t.Fatal("EnsureAdmin into a missing directory succeeded")
	}
	if n, _ := st2.CountActiveTokens(ctx, ""); n != 0 {
		t.Fatalf("%d tokens after a failed write, want 0", n)
	}
}
