package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Peer settings follow shared/TESTBED.md ("fair settings"): both peers keep
// upstream connections alive, so every proxy is measured on the same footing.

func haproxyConfig(port, b1, b2 int) string {
	return fmt.Sprintf(`global
    nbthread 2
    maxconn 8000

defaults
    mode http
    maxconn 8000
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend bench
    bind 127.0.0.1:%d
    default_backend backends

backend backends
    balance roundrobin
    server b1 127.0.0.1:%d
    server b2 127.0.0.1:%d
`, port, b1, b2)
}

// nginxConfig keeps every path nginx writes (pid, logs, temp files) under dir.
func nginxConfig(dir string, port, b1, b2 int) string {
	return fmt.Sprintf(`worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;

events {
    worker_connections 8192;
}

http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path %[1]s/client_temp;
    proxy_temp_path %[1]s/proxy_temp;
    fastcgi_temp_path %[1]s/fastcgi_temp;
    uwsgi_temp_path %[1]s/uwsgi_temp;
    scgi_temp_path %[1]s/scgi_temp;

    upstream backends {
        server 127.0.0.1:%[3]d;
        server 127.0.0.1:%[4]d;
        keepalive 256;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:%[2]d;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, dir, port, b1, b2)
}

// routesConfig is the bluegreen router's route file; the field names are the
// router's contract.
func routesConfig(admin, production, test, b1, b2 int) string {
	return fmt.Sprintf(`admin: 127.0.0.1:%d
production: 127.0.0.1:%d
test: 127.0.0.1:%d
apps:
  bench:
    hosts: ["*"]
    fleets:
      blue:  { weight: 50, targets: ["127.0.0.1:%d"] }
      green: { weight: 50, targets: ["127.0.0.1:%d"] }
    test_fleet: green
`, admin, production, test, b1, b2)
}

// systemBinary finds a Debian binary that may live in /usr/sbin, which is not
// always on PATH.
func systemBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not installed (run bench/run.sh, which installs it)", name)
}
