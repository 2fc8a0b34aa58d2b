package params

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"bluegreen/internal/store"
)

func newTest(t *testing.T) (*Store, *store.Store) {
	t.Helper()
	t.Setenv(KeyEnv, "")
	st, err := store.Open(context.Background(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ps, err := Open(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return ps, st
}

func TestValidateName(t *testing.T) {
	for name, wantErr := range map[string]string{
		"/shop/DATABASE_URL":      "",
		"/DATABASE_URL":           "",
		"/a.b/c-d/_X1":            "",
		"shop/X":                  "must start with /",
		"/shop//X":                "empty segment 2",
		"/shop/":                  "empty segment 2",
		"/":                       "empty segment 1",
		"/sh op/X":                `segment "sh op"`,
		"/shop/1X":                "not a valid environment variable name",
		"/shop/my-var":            "not a valid environment variable name",
		"/shop/X" + "/../../etc/": "empty segment",
	} {
		err := ValidateName(name)
		if (wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), wantErr)) {
			t.Errorf("ValidateName(%q) = %v, want error containing %q", name, err, wantErr)
		}
	}
}

func TestVersionsHistoryListAndDelete(t *testing.T) {
	ctx := context.Background()
	ps, _ := newTest(t)
	for i, v := range []string{"postgres://a", "postgres://b"} {
		info, err := ps.Put(ctx, "/shop/DATABASE_URL", TypeString, v, WriteOptions{CreatedBy: "alice"})
		if err != nil || info.Version != int64(i+1) || info.CreatedBy != "alice" {
			t.Fatalf("Put #%d = %+v, %v", i+1, info, err)
		}
	}
	if _, err := ps.Put(ctx, "/shop/API_KEY", TypeSecure, "s3cret", WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := ps.Get(ctx, "/shop/DATABASE_URL", 1)
	if err != nil || p.Value.Reveal() != "postgres://a" || p.Version != 1 || p.Type != TypeString {
		t.Fatalf("Get v1 = %+v, %v", p, err)
	}
	p, err = ps.Get(ctx, "/shop/API_KEY", 0)
	if err != nil || p.Value.Reveal() != "s3cret" || !p.Value.Secure() || p.Type != TypeSecure {
		t.Fatalf("Get secure = %+v, %v", p, err)
	}
	if _, err := ps.Put(ctx, "/shop/DATABASE_URL", TypeString, "x", WriteOptions{ExpectVersion: 1}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Put with stale ExpectVersion: %v, want ErrConflict", err)
	}
	if _, err := ps.Put(ctx, "/shop/DATABASE_URL", "number", "1", WriteOptions{}); err == nil {
		t.Fatal("unknown type accepted")
	}

	del, err := ps.Delete(ctx, "/shop/DATABASE_URL", WriteOptions{ExpectVersion: 2})
	if err != nil || del.Version != 3 || del.Type != TypeDeleted {
		t.Fatalf("Delete = %+v, %v", del, err)
	}
	if _, err := ps.Get(ctx, "/shop/DATABASE_URL", 0); !errors.Is(err, ErrDeleted) || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after delete: %v, want ErrDeleted", err)
	}
	if _, err := ps.Delete(ctx, "/shop/DATABASE_URL", WriteOptions{}); !errors.Is(err, ErrDeleted) {
		t.Fatalf("second Delete: %v, want ErrDeleted", err)
	}
	if _, err := ps.Delete(ctx, "/shop/NEVER", WriteOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete of a missing param: %v, want ErrNotFound", err)
	}
	hist, err := ps.History(ctx, "/shop/DATABASE_URL")
	if err != nil || len(hist) != 3 || hist[2].Type != TypeDeleted {
		t.Fatalf("History = %+v, %v", hist, err)
	}
	// Old versions stay readable after the delete.
	if p, err := ps.Get(ctx, "/shop/DATABASE_URL", 2); err != nil || p.Value.Reveal() != "postgres://b" {
		t.Fatalf("Get v2 after delete = %+v, %v", p, err)
	}
	ps.Put(ctx, "/shopping/CART", TypeString, "x", WriteOptions{})
	list, err := ps.List(ctx, "/shop")
	if err != nil || len(list) != 1 || list[0].Name != "/shop/API_KEY" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// A write after a delete starts the next version, history intact.
	if info, err := ps.Put(ctx, "/shop/DATABASE_URL", TypeString, "c", WriteOptions{}); err != nil || info.Version != 4 {
		t.Fatalf("Put after delete = %+v, %v", info, err)
	}
}

func TestPinAndResolve(t *testing.T) {
	ctx := context.Background()
	ps, st := newTest(t)
	ps.Put(ctx, "/shop/DATABASE_URL", TypeString, "db-v1", WriteOptions{})
	ps.Put(ctx, "/shop/API_KEY", TypeSecure, "key-v1", WriteOptions{})
	ps.Put(ctx, "/shop/API_KEY", TypeSecure, "key-v2", WriteOptions{})
	names := []string{"/shop/DATABASE_URL", "/shop/API_KEY"}
	pins, err := ps.Pin(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"/shop/DATABASE_URL": 1, "/shop/API_KEY": 2}; !reflect.DeepEqual(pins, want) {
		t.Fatalf("pins = %v, want %v", pins, want)
	}
	rev, err := st.CreateRevision(ctx, store.Revision{App: "shop", Source: "bundle:sha256:aa", Params: pins})
	if err != nil {
		t.Fatal(err)
	}
	// Changing and deleting params later does not touch the pinned revision.
	ps.Put(ctx, "/shop/DATABASE_URL", TypeString, "db-v2", WriteOptions{})
	ps.Delete(ctx, "/shop/API_KEY", WriteOptions{})
	rev, err = st.GetRevision(ctx, "shop", rev.Generation)
	if err != nil {
		t.Fatal(err)
	}
	env, err := ps.Resolve(ctx, rev.Params)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := env.Environ(), []string{"API_KEY=key-v2", "DATABASE_URL=db-v1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Environ = %v, want the pinned versions %v", got, want)
	}
	if !env["API_KEY"].Secure() || env["DATABASE_URL"].Secure() {
		t.Fatalf("secure flags lost: %#v", env)
	}

	_, err = ps.Pin(ctx, []string{"/shop/DATABASE_URL", "/shop/API_KEY", "/shop/MISSING"})
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "not found: /shop/MISSING") ||
		!strings.Contains(err.Error(), "deleted: /shop/API_KEY") {
		t.Fatalf("Pin with missing and deleted: %v", err)
	}
	if _, err := ps.Resolve(ctx, map[string]int64{"/shop/DATABASE_URL": 9}); !errors.Is(err, store.ErrNotFound) ||
		!strings.Contains(err.Error(), "/shop/DATABASE_URL version 9") {
		t.Fatalf("Resolve of a missing version: %v", err)
	}
	ps.Put(ctx, "/common/DATABASE_URL", TypeString, "x", WriteOptions{})
	if _, err := ps.Pin(ctx, []string{"/shop/DATABASE_URL", "/common/DATABASE_URL"}); err == nil ||
		!strings.Contains(err.Error(), "both set environment variable DATABASE_URL") {
		t.Fatalf("Pin of two params for one variable: %v", err)
	}
}

func TestWrongKeyFailsLoudly(t *testing.T) {
	ctx := context.Background()
	ps, st := newTest(t)
	if _, err := ps.Put(ctx, "/shop/API_KEY", TypeSecure, "s3cret", WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	other := make([]byte, KeySize)
	rand.Read(other)
	_, err := New(ctx, st, other)
	if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "params key does not match") {
		t.Fatalf("New with a wrong key: %v, want ErrDecrypt at start", err)
	}
	// Past the start-up check (a key swapped under a running server, or a
	// database restored from elsewhere), reads still fail rather than
	// return garbage.
	wrong, err := newUnchecked(st, other)
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.Get(ctx, "/shop/API_KEY", 0)
	if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "/shop/API_KEY version 1") {
		t.Fatalf("Get with a wrong key: %v, want ErrDecrypt naming the param", err)
	}
	_, err = wrong.Resolve(ctx, map[string]int64{"/shop/API_KEY": 1})
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Resolve with a wrong key: %v, want ErrDecrypt", err)
	}
}

func TestTamperedValuesFailLoudly(t *testing.T) {
	ctx := context.Background()
	ps, st := newTest(t)
	ps.Put(ctx, "/shop/API_KEY", TypeSecure, "one", WriteOptions{})
	ps.Put(ctx, "/shop/API_KEY", TypeSecure, "two", WriteOptions{})
	ps.Put(ctx, "/shop/OTHER", TypeSecure, "three", WriteOptions{})

	// Tamper as someone with the file would: behind the store's back.
	raw, err := sql.Open("sqlite", filepath.Join(st.Dir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := raw.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(`DROP TRIGGER params_immutable`)
	// Version 2 gets version 1's ciphertext: valid bytes, wrong row.
	mustExec(`UPDATE params SET value = (SELECT value FROM params WHERE name = '/shop/API_KEY' AND version = 1)
		WHERE name = '/shop/API_KEY' AND version = 2`)
	// OTHER gets API_KEY's ciphertext: valid bytes, wrong name.
	mustExec(`UPDATE params SET value = (SELECT value FROM params WHERE name = '/shop/API_KEY' AND version = 1)
		WHERE name = '/shop/OTHER'`)
	// Version 1 gets one flipped bit.
	var v []byte
	raw.QueryRowContext(ctx, `SELECT value FROM params WHERE name = '/shop/API_KEY' AND version = 1`).Scan(&v)
	v[len(v)-1] ^= 1
	mustExec(`UPDATE params SET value = ? WHERE name = '/shop/API_KEY' AND version = 1`, v)

	for _, tc := range []struct {
		name    string
		version int64
	}{{"/shop/API_KEY", 1}, {"/shop/API_KEY", 2}, {"/shop/OTHER", 1}} {
		_, err := ps.Get(ctx, tc.name, tc.version)
		if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("Get(%s, %d) of a tampered value: %v, want ErrDecrypt naming it", tc.name, tc.version, err)
		}
	}
}

func TestSecureValueIsEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	ps, st := newTest(t)
	secret := "correct-horse-battery-staple"
	if _, err := ps.Put(ctx, "/shop/API_KEY", TypeSecure, secret, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal"} {
		b, _ := readFileIfExists(filepath.Join(st.Dir(), store.FileName+suffix))
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("plain text of a secure value found in %s%s", store.FileName, suffix)
		}
	}
}

func TestConcurrentWritesGetDistinctVersions(t *testing.T) {
	ctx := context.Background()
	ps, _ := newTest(t)
	const writers, each = 6, 5
	var wg sync.WaitGroup
	seen := make(chan int64, writers*each)
	for range writers {
		wg.Go(func() {
			for range each {
				info, err := ps.Put(ctx, "/shop/COUNTER", TypeSecure, "v", WriteOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				seen <- info.Version
			}
		})
	}
	wg.Wait()
	close(seen)
	got := map[int64]bool{}
	for v := range seen {
		got[v] = true
	}
	for v := int64(1); v <= writers*each; v++ {
		if !got[v] {
			t.Fatalf("version %d missing; versions: %v", v, got)
		}
	}
	// Each version decrypts: nonces and additional data were per row.
	for v := int64(1); v <= writers*each; v++ {
		if p, err := ps.Get(ctx, "/shop/COUNTER", v); err != nil || p.Value.Reveal() != "v" {
			t.Fatalf("version %d: %+v, %v", v, p, err)
		}
	}
}
