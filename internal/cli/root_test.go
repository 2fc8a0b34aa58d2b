package cli

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "routes.yaml")
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"version"}, ExitOK},
		{[]string{"nonsense"}, ExitUsage},
		{[]string{"version", "extra"}, ExitUsage},
		{[]string{"router"}, ExitUsage},
		{[]string{"router", "--bogus"}, ExitUsage},
		{[]string{"router", "--config", missing}, ExitError},
	} {
		if got := Main(tc.args); got != tc.want {
			t.Errorf("bluegreen %v exited %d, want %d", tc.args, got, tc.want)
		}
	}
}

func TestInstanceShimIsHidden(t *testing.T) {
	root := NewRootCmd(io.Discard, io.Discard)
	cmd, _, err := root.Find([]string{"instance-shim"})
	if err != nil || cmd.Name() != "instance-shim" {
		t.Fatalf("instance-shim is not a command: %v", err)
	}
	if !cmd.Hidden {
		t.Errorf("instance-shim shows in help")
	}
}

func TestANumberFlagThatIsNotANumber(t *testing.T) {
	code, _, stderr := runCLI(t, "rollback", "shop", "--to", "abc")
	if code != ExitUsage || !strings.Contains(stderr, `-t, --to: "abc" is not a number`) && !strings.Contains(stderr, `--to: "abc" is not a number`) {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
}
