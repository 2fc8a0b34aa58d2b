package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/server"
)

// cliServer is a real `bluegreen server` run from the built binary, and
// the binary to run commands against it.
type cliServer struct {
	bin, data, addr string
}

// startCLIServer builds bluegreen, starts `bluegreen server` on a free
// loopback port and waits until its admin token works.
func startCLIServer(t *testing.T) *cliServer {
	t.Helper()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bluegreen")
	if out, err := exec.Command("go", "build", "-o", bin, "bluegreen/cmd/bluegreen").CombinedOutput(); err != nil {
		t.Fatalf("building bluegreen: %v\n%s", err, out)
	}
	// Short: the router's unix socket lives under it.
	data, err := os.MkdirTemp("", "bgcli-")
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command(bin, "server", "--data", data, "--api", "127.0.0.1:0", "--log-format", "json")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		if out, err := exec.Command(bin, "server", "--stop-all", "--data", data).CombinedOutput(); err != nil {
			t.Errorf("stop-all: %v\n%s", err, out)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", log.String())
		}
		os.RemoveAll(data)
	})
	s := &cliServer{bin: bin, data: data}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("the server exited:\n%s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not answer in 30s:\n%s", log.String())
		}
		info, err := server.ReadInfo(data)
		token, terr := os.ReadFile(filepath.Join(data, "admin.token"))
		if err == nil && terr == nil && info.PID == cmd.Process.Pid {
			c := api.NewClient(info.API)
			c.Token = strings.TrimSpace(string(token))
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = c.Tokens(ctx)
			cancel()
			if err == nil {
				s.addr = info.API
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// run runs the binary with env (on top of a clean one) and stdin.
func (s *cliServer) run(t *testing.T, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = t.TempDir() // no ./.bluegreen here
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cliResult{code, out.String(), errb.String()}
}

// want checks the exit code and that stdout+stderr mention every word.
func (r cliResult) want(t *testing.T, what string, code int, mentions ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
		return
	}
	for _, m := range mentions {
		if !strings.Contains(r.stdout+r.stderr, m) {
			t.Errorf("%s: output does not mention %q\nstdout: %s\nstderr: %s", what, m, r.stdout, r.stderr)
		}
	}
	if code != 0 && strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
		t.Errorf("%s: the error is not one line:\n%s", what, r.stderr)
	}
}

func TestTokenAndParamsCommands(t *testing.T) {
	s := startCLIServer(t)
	local := []string{DataEnv + "=" + s.data} // the admin token of the data directory
	as := func(secret string) []string { return []string{ServerEnv + "=" + s.addr, TokenEnv + "=" + secret} }

	// Tokens: made by the admin token the server wrote at first start.
	created := s.run(t, local, "", "token", "create", "--role", "viewer", "--name", "dash")
	created.want(t, "token create viewer", 0, "shown only this once", "--token")
	viewer := strings.TrimSpace(created.stdout)
	if !strings.HasPrefix(viewer, "bg_") || strings.Contains(viewer, "\n") {
		t.Fatalf("token create printed %q on stdout; want the secret alone", created.stdout)
	}
	created = s.run(t, local, "", "token", "create", "--role", "deployer", "--name", "ci")
	created.want(t, "token create deployer", 0)
	deployer := strings.TrimSpace(created.stdout)

	s.run(t, local, "", "token", "create", "--name", "x").want(t, "token create without --role", ExitUsage, "--role is required")
	s.run(t, local, "", "token", "create", "--role", "root").want(t, "token create --role root", ExitUsage, `role "root"`)
	s.run(t, local, "", "token", "create", "--role", "viewer", "--name", "two words").want(t, "token create with a bad name", ExitUsage, `"two words"`)
	s.run(t, local, "", "token", "frobnicate").want(t, "token frobnicate", ExitUsage, "unknown command")

	list := s.run(t, local, "", "token", "list")
	list.want(t, "token list", 0, "dash", "ci", "admin", "viewer", "deployer", "never")
	if strings.Contains(list.stdout, viewer) || strings.Contains(list.stdout, deployer) {
		t.Errorf("token list shows a secret:\n%s", list.stdout)
	}
	var toks []api.Token
	js := s.run(t, local, "", "token", "list", "--json")
	if err := json.Unmarshal([]byte(js.stdout), &toks); err != nil || len(toks) != 3 {
		t.Fatalf("token list --json: %v\n%s", err, js.stdout)
	}
	ids := map[string]string{}
	for _, tok := range toks {
		ids[tok.Name] = tok.ID
		if tok.Secret != "" || strings.Contains(js.stdout, `"token"`) {
			t.Errorf("token list --json shows a secret: %+v", tok)
		}
	}
	s.run(t, as(viewer), "", "token", "list").want(t, "a viewer listing tokens", ExitError, "needs a token with role admin", "token dash", "has role viewer")

	// Params: the server and token from the environment, or from flags.
	s.run(t, as(deployer), "", "params", "set", "/shop/LOG_LEVEL", "debug").want(t, "params set", 0, "/shop/LOG_LEVEL: version 1 (string)")
	s.run(t, nil, "", "params", "set", "/shop/LOG_LEVEL", "info", "--server", s.addr, "--token", deployer).want(t, "params set with flags", 0, "version 2")
	s.run(t, as(deployer), "s3cret\n", "params", "set", "/shop/API_KEY", "--secure", "--from-file", "-").want(t, "params set --secure from stdin", 0, "version 1 (secure)")
	file := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(file, []byte("postgres://db/shop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.run(t, as(deployer), "", "params", "set", "/shop/DB_URL", "--from-file", file).want(t, "params set --from-file", 0)
	s.run(t, as(deployer), "", "params", "set", "/shop/LOG_LEVEL", "warn", "--expect-version", "1").want(t, "a stale --expect-version", ExitError, "expected version 1, latest is 2")

	get := s.run(t, as(deployer), "", "params", "get", "/shop/API_KEY")
	get.want(t, "deployer reads a secure param", 0)
	if get.stdout != "s3cret\n" {
		t.Errorf("params get printed %q, want the value alone", get.stdout)
	}
	s.run(t, as(viewer), "", "params", "get", "/shop/API_KEY").want(t, "viewer reads a secure param", ExitError, "is secure", "role deployer", "has role viewer")
	if got := s.run(t, as(viewer), "", "params", "get", "/shop/DB_URL"); got.stdout != "postgres://db/shop\n" {
		t.Errorf("params get --from-file value = %q (one trailing newline is dropped)", got.stdout)
	}
	if got := s.run(t, as(viewer), "", "params", "get", "/shop/LOG_LEVEL", "--version", "1"); got.stdout != "debug\n" {
		t.Errorf("params get --version 1 = %q", got.stdout)
	}

	ls := s.run(t, as(viewer), "", "params", "list", "/shop")
	ls.want(t, "params list", 0, "/shop/API_KEY", "[redacted]", "/shop/LOG_LEVEL", "info")
	if strings.Contains(ls.stdout, "s3cret") {
		t.Errorf("params list shows a secure value:\n%s", ls.stdout)
	}
	var ps []api.Param
	if err := json.Unmarshal([]byte(s.run(t, as(deployer), "", "params", "list", "--json").stdout), &ps); err != nil || len(ps) != 3 {
		t.Fatalf("params list --json = %+v, %v", ps, err)
	}

	s.run(t, as(viewer), "", "params", "set", "/shop/LOG_LEVEL", "x").want(t, "a viewer writing", ExitError, "needs a token with role deployer")
	s.run(t, as(deployer), "", "params", "rm", "/shop/LOG_LEVEL").want(t, "params rm", 0, "deleted (version 3)")
	s.run(t, as(deployer), "", "params", "get", "/shop/LOG_LEVEL").want(t, "params get of a deleted param", ExitError, "deleted")
	s.run(t, as(deployer), "", "params", "rm", "/shop/LOG_LEVEL").want(t, "params rm twice", ExitError, "already deleted")
	hist := s.run(t, as(viewer), "", "params", "history", "/shop/LOG_LEVEL")
	hist.want(t, "params history", 0, "deleted", "ci")
	if err := json.Unmarshal([]byte(s.run(t, as(viewer), "", "params", "history", "/shop/LOG_LEVEL", "--json").stdout), &ps); err != nil || len(ps) != 3 {
		t.Fatalf("params history --json = %+v, %v", ps, err)
	}

	// Usage errors exit 2 before any request.
	s.run(t, as(deployer), "", "params", "set", "shop/X", "v").want(t, "a name without /", ExitUsage, "must start with /")
	s.run(t, as(deployer), "", "params", "set", "/shop/X").want(t, "no value", ExitUsage, "no value")
	s.run(t, as(deployer), "", "params", "set", "/shop/X", "v", "--from-file", file).want(t, "value and file", ExitUsage, "not both")
	s.run(t, as(deployer), "", "params", "get").want(t, "params get without NAME", ExitUsage, "one param NAME")
	s.run(t, as(deployer), "", "params", "list", "shop").want(t, "a prefix without /", ExitUsage, "must start with /")
	s.run(t, as(deployer), "", "params", "get", "/shop/X", "--version", "-1").want(t, "a negative version", ExitUsage, "--version")
	s.run(t, as(deployer), "", "params", "set", "/shop/X", "--from-file", filepath.Join(t.TempDir(), "missing")).want(t, "a missing file", ExitError, "--from-file")

	// No or bad token: 401 with the way to get one.
	s.run(t, []string{ServerEnv + "=" + s.addr}, "", "params", "list").want(t, "no token", ExitError, "needs a token", "admin.token")
	s.run(t, as("bg_nope"), "", "params", "list").want(t, "an unknown token", ExitError, "not valid")

	// Revoking.
	s.run(t, local, "", "token", "revoke", ids["dash"]).want(t, "token revoke", 0, "revoked token "+ids["dash"])
	s.run(t, as(viewer), "", "params", "list").want(t, "a revoked token", ExitError, "not valid")
	s.run(t, local, "", "token", "revoke", ids["admin"]).want(t, "revoking the last admin", ExitError, "last active admin token")
	s.run(t, local, "", "token", "revoke", "t-nope").want(t, "revoking an unknown token", ExitError, "t-nope")
	s.run(t, local, "", "token", "revoke").want(t, "token revoke without ID", ExitUsage, "one token ID")
}

func TestTokenAndParamsHelpHasExamples(t *testing.T) {
	root := NewRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	for _, path := range [][]string{
		{"token", "create"}, {"token", "list"}, {"token", "revoke"},
		{"params", "set"}, {"params", "get"}, {"params", "list"}, {"params", "history"}, {"params", "rm"},
	} {
		cmd, _, err := root.Find(path)
		if err != nil {
			t.Fatalf("%v: %v", path, err)
		}
		if cmd.Example == "" {
			t.Errorf("bluegreen %s --help has no examples", strings.Join(path, " "))
		}
	}
}
