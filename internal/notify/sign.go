package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of a notification.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256, keyed with the
	// destination's secret, of the timestamp, a dot and the body.
	HeaderSignature = "X-Bluegreen-Signature"
	// HeaderTimestamp is when the request was signed, in Unix seconds.
	HeaderTimestamp = "X-Bluegreen-Timestamp"
	// HeaderDelivery is the same for every attempt of one notification to
	// one destination: a receiver that saw it already drops the repeat.
	HeaderDelivery = "X-Bluegreen-Delivery"
	// HeaderEvent is the notification event (rolled_back, …).
	HeaderEvent = "X-Bluegreen-Event"
)

// DefaultTolerance is how far from now a receiver should accept a
// timestamp, so that a recorded request cannot be replayed later.
const DefaultTolerance = 5 * time.Minute

// Sign returns the value of HeaderSignature for body signed at ts.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("the signature does not match the body")
	ErrStale        = errors.New("the timestamp is too far from now")
)

// Verify checks a notification as a receiver does: the signature header
// against the body and timestamp header, and the timestamp against now
// (within tolerance either way). Receivers in other languages do the same:
// HMAC-SHA256 over "TIMESTAMP.BODY", compared in constant time.
func Verify(secret []byte, signature, timestamp string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%s %q: not a Unix time", HeaderTimestamp, timestamp)
	}
	got, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return fmt.Errorf("%s %q: want sha256=HEX", HeaderSignature, signature)
	}
	sum, err := hex.DecodeString(got)
	if err != nil {
		return fmt.Errorf("%s: %w", HeaderSignature, ErrBadSignature)
	}
	want, _ := hex.DecodeString(strings.TrimPrefix(Sign(secret, ts, body), "sha256="))
	if !hmac.Equal(sum, want) {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s, now %s", ErrStale, time.Unix(ts, 0).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}
