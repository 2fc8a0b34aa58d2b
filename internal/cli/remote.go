package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"bluegreen/internal/api"
	"bluegreen/internal/server"
)

// Environment variables naming the server and the token.
const (
	ServerEnv = "BLUEGREEN_SERVER"
	TokenEnv  = "BLUEGREEN_TOKEN"
)

// remoteOptions say how a command reaches the server: --server and --token,
// else $BLUEGREEN_SERVER and $BLUEGREEN_TOKEN, else the local data
// directory (--data, $BLUEGREEN_DATA or ./.bluegreen), whose server.json
// names the running server's address and whose admin.token holds the
// first admin token.
type remoteOptions struct {
	Server  string
	Token   string
	DataDir string
}

// addRemoteFlags registers --server, --token and --data on cmd.
func addRemoteFlags(cmd *cobra.Command, o *remoteOptions) {
	cmd.Flags().StringVar(&o.Server, "server", "", "server address, host:port or URL (default $"+ServerEnv+", else the local server of --data)")
	cmd.Flags().StringVar(&o.Token, "token", "", "API token (default $"+TokenEnv+", else the local data directory's admin token)")
	cmd.Flags().StringVar(&o.DataDir, "data", "", "data directory of a local server (default $"+DataEnv+" or ./.bluegreen)")
}

// tokenFile is where a server keeps the admin token it created at first start.
const tokenFile = "admin.token"

// client returns an API client for the server the options name.
func (o remoteOptions) client() (*api.Client, error) {
	addr, token := o.Server, o.Token
	if addr == "" {
		addr = os.Getenv(ServerEnv)
	}
	if token == "" {
		token = os.Getenv(TokenEnv)
	}
	dir := o.DataDir
	if dir == "" {
		dir = defaultDataDir()
	}
	if addr == "" {
		info, err := readyServer(dir)
		if err != nil {
			return nil, err
		}
		addr = info.API
	}
	if token == "" {
		if b, err := os.ReadFile(filepath.Join(dir, tokenFile)); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	c := api.NewClient(addr)
	c.Token = token
	return c, nil
}

// serverStartWait bounds how long a command waits for a local server that
// is starting.
const serverStartWait = 30 * time.Second

// readyServer reads the local server's server.json, waiting while the
// server is still starting (its address not written yet), so that a
// script may start a server and use it on the next line.
func readyServer(dir string) (server.Info, error) {
	deadline := time.Now().Add(serverStartWait)
	for {
		info, err := server.ReadInfo(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return info, fmt.Errorf("no server to talk to: pass --server or set $%s, or start `bluegreen server` (no server.json in %s)", ServerEnv, dir)
		case err != nil:
			return info, fmt.Errorf("reading %s: %w", filepath.Join(dir, "server.json"), err)
		case info.API != "":
			return info, nil
		case syscall.Kill(info.PID, 0) != nil:
			return info, fmt.Errorf("the server (pid %d) on %s stopped before it was ready: see its output", info.PID, dir)
		case time.Now().After(deadline):
			return info, fmt.Errorf("the server (pid %d) on %s is still starting after %s", info.PID, dir, serverStartWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
