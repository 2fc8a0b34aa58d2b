package params

import (
	"crypto/rand"
	"fmt"
	"strconv"
)

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
