package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

func TestTokensCreateFindListRevoke(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	hash := func(secret string) []byte { h := sha256.Sum256([]byte(secret)); return h[:] }

	var admin, viewer Token
	err := s.Update(ctx, func(tx *Tx) (err error) {
		if admin, err = tx.InsertToken(ctx, Token{ID: "t-1", Name: "admin", Role: "admin", Hash: hash("a")}); err != nil {
			return err
		}
		viewer, err = tx.InsertToken(ctx, Token{ID: "t-2", Name: "ci", Role: "viewer", Hash: hash("v")})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if admin.CreatedAt.IsZero() || !admin.Active() {
		t.Fatalf("created token = %+v", admin)
	}

	got, err := s.TokenByHash(ctx, hash("v"))
	if err != nil || got.ID != viewer.ID || got.Role != "viewer" || !bytes.Equal(got.Hash, hash("v")) {
		t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	if _, err := s.TokenByHash(ctx, hash("nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown hash: %v, want ErrNotFound", err)
	}

	// The same secret (hash) or ID cannot be stored twice.
	for _, dup := range []Token{{ID: "t-3", Name: "x", Role: "viewer", Hash: hash("v")}, {ID: "t-1", Name: "x", Role: "viewer", Hash: hash("new")}} {
		err := s.Update(ctx, func(tx *Tx) error { _, err := tx.InsertToken(ctx, dup); return err })
		if !errors.Is(err, ErrExists) {
			t.Errorf("duplicate %s: %v, want ErrExists", dup.ID, err)
		}
	}
	// The schema refuses an unknown role.
	err = s.Update(ctx, func(tx *Tx) error {
		_, err := tx.InsertToken(ctx, Token{ID: "t-4", Name: "x", Role: "root", Hash: hash("r")})
		return err
	})
	if err == nil {
		t.Fatal("role root was stored")
	}

	if n, err := s.CountActiveTokens(ctx, ""); err != nil || n != 2 {
		t.Fatalf("active tokens = %d, %v; want 2", n, err)
	}
	if n, err := s.CountActiveTokens(ctx, "admin"); err != nil || n != 1 {
		t.Fatalf("active admin tokens = %d, %v; want 1", n, err)
	}

	when := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := s.TouchToken(ctx, viewer.ID, when); err != nil {
		t.Fatal(err)
	}
	var revoked Token
	err = s.Update(ctx, func(tx *Tx) (err error) { revoked, err = tx.RevokeToken(ctx, viewer.ID); return err })
	if err != nil || revoked.Active() || !revoked.LastUsedAt.Equal(when) {
		t.Fatalf("revoke = %+v, %v", revoked, err)
	}
	err = s.Update(ctx, func(tx *Tx) error { _, err := tx.RevokeToken(ctx, viewer.ID); return err })
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("second revoke: %v, want ErrConflict", err)
	}
	err = s.Update(ctx, func(tx *Tx) error { _, err := tx.RevokeToken(ctx, "t-404"); return err })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking an unknown token: %v, want ErrNotFound", err)
	}
	// A revoked token is still found by its hash, so callers can refuse it.
	if got, err := s.TokenByHash(ctx, hash("v")); err != nil || got.Active() {
		t.Fatalf("revoked token by hash = %+v, %v", got, err)
	}

	list, err := s.ListTokens(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "t-1" || list[1].Active() {
		t.Fatalf("ListTokens = %+v, %v", list, err)
	}
	if n, _ := s.CountActiveTokens(ctx, ""); n != 1 {
		t.Fatalf("active tokens after revoke = %d, want 1", n)
	}
}
