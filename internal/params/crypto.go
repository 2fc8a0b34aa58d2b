package params

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
)

// keyCheckMeta is the meta key of a value sealed with the params key when
// the database first met it.
const keyCheckMeta = "params.key_check"

// checkKey seals a known value on first use and opens it on every later
// one: a different key fails here, before any secret is needed.
func (s *Store) checkKey(ctx context.Context) error {
	stored, err := s.st.InitMeta(ctx, keyCheckMeta, s.seal(keyCheckMeta, 0, keyCheckMeta))
	if err != nil {
		return fmt.Errorf("checking params key: %w", err)
	}
	if _, err := s.open(keyCheckMeta, 0, stored); err != nil {
		return fmt.Errorf("params key does not match the one this database's secure params were written with (%s or $%s): %w",
			KeyFile, KeyEnv, ErrDecrypt)
	}
	return nil
}

// additionalData binds a ciphertext to its row: copied to another name or
// version, it no longer authenticates.
func additionalData(name string, version int64) []byte {
	return []byte("bluegreen/params/v1\x00" + name + "\x00" + strconv.FormatInt(version, 10))
}

// seal returns nonce||ciphertext. A fresh random nonce per value: with
// 96-bit nonces, collisions are negligible at any realistic write count.
func (s *Store) seal(name string, version int64, plain string) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("reading random nonce: %v", err))
	}
	return s.aead.Seal(nonce, nonce, []byte(plain), additionalData(name, version))
}

func (s *Store) open(name string, version int64, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return "", fmt.Errorf("param %s version %d: %w", name, version, ErrDecrypt)
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], additionalData(name, version))
	if err != nil {
		return "", fmt.Errorf("param %s version %d: %w", name, version, ErrDecrypt)
	}
	return string(plain), nil
}
