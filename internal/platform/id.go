package platform

import (
	"fmt"
	"regexp"
)

var validID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,99}$`)

// CheckID rejects an instance ID that is not [a-z0-9-], starting with a
// letter or digit, at most 100 characters: IDs become file names and
// container names.
func CheckID(id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("bad instance ID %q: want [a-z0-9-], starting with a letter or digit, at most 100 characters", id)
	}
	return nil
}
