package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"bluegreen/internal/platform/docker"
)

// idFile holds the server's identity: the owner label of its containers,
// so that servers sharing a Docker engine never touch each other's.
const idFile = "server.id"

// serverID returns the data directory's identity, made on first use.
func serverID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, idFile)
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw[:])
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return id, nil
}

// openDocker opens the Docker platform of the server and says which engine
// it talks to. An engine that is down is no reason not to start: it fails
// the apps that run on it, and only those, until it is up.
func openDocker(ctx context.Context, dataDir, host string, log *slog.Logger, redact func() func(string) string) (*docker.Platform, error) {
	id, err := serverID(dataDir)
	if err != nil {
		return nil, err
	}
	source := ""
	if host != "" {
		source = "--docker-host"
	}
	p, err := docker.New(docker.Options{DockerHost: host, DockerHostSource: source, Owner: id, Logger: log, Redact: redact})
	if err != nil {
		return nil, err
	}
	if log != nil {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		addr, from := p.Engine()
		if info, err := p.Describe(dctx); err != nil {
			log.Info("no Docker engine answers: apps with platform docker wait for it", "engine", addr, "from", from, "err", err)
		} else {
			log.Info(fmt.Sprintf("Docker engine %s, API %s", info.Version, info.APIVersion), "engine", addr, "from", from)
			if !info.LiveRestore {
				log.Warn("the Docker engine stops every container when it restarts (live-restore is off): set \"live-restore\": true in its daemon.json so that live fleets outlive an engine restart", "engine", addr)
			}
		}
	}
	return p, nil
}
