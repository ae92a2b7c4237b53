package db

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// secretPrefix versions the ciphertext format, so a later key rotation can
// tell old values from new ones.
const secretPrefix = "v1:"

func newAEAD(key []byte) (cipher.AEAD, error) {
	if key == nil {
		return nil, nil
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("db: secret key must be 32 bytes (AES-256), got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("db: secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("db: secret key: %w", err)
	}
	return aead, nil
}

// seal encrypts plaintext with AES-256-GCM; the stored form is
// "v1:" + base64(nonce || ciphertext). aad binds the value to its row and
// column, so a ciphertext copied to another row does not decrypt. An empty
// plaintext is stored as "" (no secret) and needs no key.
func (s *Store) seal(plaintext, aad string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	if s.aead == nil {
		return "", ErrNoSecretKey
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secret nonce: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, []byte(plaintext), []byte(aad))
	return secretPrefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// open reverses seal.
func (s *Store) open(stored, aad string) (string, error) {
	if stored == "" {
		return "", nil
	}
	if s.aead == nil {
		return "", ErrNoSecretKey
	}
	b64, ok := strings.CutPrefix(stored, secretPrefix)
	if !ok {
		return "", errors.New("secret: unknown ciphertext format")
	}
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", errors.New("secret: malformed ciphertext")
	}
	n := s.aead.NonceSize()
	pt, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(aad))
	if err != nil {
		return "", errors.New("secret: cannot decrypt (wrong secret key?)")
	}
	return string(pt), nil
}
