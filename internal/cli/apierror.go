package cli

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"bluegreen/internal/api"
)

// explain turns an error of an API call into one line a person can act
// on: the server's own message for an error answer (with a pointer to the
// command that lists what exists when something was not found), and what
// to check when the server could not be reached.
func explain(err error, doing string) error {
	var ae *api.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &ae) && ae.Code == api.CodeNotFound && !strings.Contains(ae.Message, "`bluegreen "):
		return fmt.Errorf("%s (see `bluegreen apps`)", ae.Message)
	case errors.As(err, &ae):
		return errors.New(ae.Message)
	case errors.As(err, &oe) && oe.Op == "dial":
		return fmt.Errorf("%s: cannot reach the server (%v); is `bluegreen server` running? (--server, $%s)", doing, oe.Err, ServerEnv)
	}
	return fmt.Errorf("%s: %w", doing, err)
}
