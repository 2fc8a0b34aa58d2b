package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
		info, err := server.ReadInfo(dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("no server to talk to: pass --server or set $%s, or start `bluegreen server` (no server.json in %s)", ServerEnv, dir)
			}
			return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, "server.json"), err)
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
