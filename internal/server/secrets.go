package server

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"bluegreen/internal/params"
)

// serverSecrets are the server's own secrets that apps' output must never
// show: the admin token as written to its file.
func serverSecrets(tokenPath string) []string {
	b, err := os.ReadFile(tokenPath)
	if err != nil {
		return nil
	}
	if tok := strings.TrimSpace(string(b)); tok != "" {
		return []string{tok}
	}
	return nil
}

// outputRedactor hides, in an instance's output, every secure param value
// the server holds and its own secrets. If the secure values cannot be
// read, the output is withheld rather than shown unredacted.
func outputRedactor(ps *params.Store, secrets []string, log *slog.Logger) func() func(string) string {
	return func() func(string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := ps.Redactor(ctx, secrets...)
		if err != nil {
			log.Error("reading the secrets to hide in instance output; withholding the output", "err", err)
			return func(string) string { return "[output withheld: the server could not read the secrets to hide in it]\n" }
		}
		return r.Redact
	}
}
