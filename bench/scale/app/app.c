/*
 * app is the smallest app bench/scale deploys by the thousand: a
 * single-threaded HTTP/1.1 responder on 127.0.0.1:$PORT, one poll loop, a
 * few hundred KB of memory. It answers GET /healthz with "ok" and any
 * other GET or HEAD with its revision ($BG_REVISION), keeps connections
 * alive, and exits on SIGTERM or SIGINT. It keeps nothing and logs
 * nothing but a fatal error, so what the benchmark measures is the
 * controller, not the app.
 *
 * Build: gcc -O2 -o app app.c (bench/scale does it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#define MAXCONN 64   /* the router keeps few connections to one instance */
#define BUFSZ 4096   /* a request head larger than this is refused */

struct conn {
	int fd;
	size_t len;
	char buf[BUFSZ];
};

static volatile sig_atomic_t stop;
static struct conn conns[MAXCONN];
static char body[256];
static size_t bodylen;

static void onsignal(int sig) { (void)sig; stop = 1; }

static void die(const char *what) {
	fprintf(stderr, "app: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* writeall writes a short response on a blocking-enough socket: the
 * answers are a few hundred bytes, far below any socket buffer. */
static int writeall(int fd, const char *p, size_t n) {
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* answer serves every complete request head in c's buffer; it returns -1
 * when the connection must close. Requests have no body (GET, HEAD). */
static int answer(struct conn *c) {
	for (;;) {
		char *end = NULL;
		for (size_t i = 3; i < c->len; i++) {
			if (memcmp(c->buf + i - 3, "\r\n\r\n", 4) == 0) { end = c->buf + i + 1; break; }
		}
		if (!end) return c->len == BUFSZ ? -1 : 0;
		int head = strncmp(c->buf, "HEAD ", 5) == 0;
		int get = strncmp(c->buf, "GET ", 4) == 0;
		const char *path = c->buf + (head ? 5 : 4);
		char out[512];
		int n;
		if (!get && !head) {
			n = snprintf(out, sizeof out, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
			writeall(c->fd, out, (size_t)n);
			return -1;
		}
		const char *b = body;
		size_t blen = bodylen;
		if (strncmp(path, "/healthz ", 9) == 0 || strncmp(path, "/healthz?", 9) == 0) { b = "ok\n"; blen = 3; }
		n = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%.*s",
			blen, head ? 0 : (int)blen, b);
		if (writeall(c->fd, out, (size_t)n) < 0) return -1;
		size_t used = (size_t)(end - c->buf);
		memmove(c->buf, end, c->len - used);
		c->len -= used;
	}
}

int main(void) {
	const char *port = getenv("PORT");
	const char *rev = getenv("BG_REVISION");
	if (!port || !*port) { fprintf(stderr, "app: PORT is not set\n"); return 1; }
	bodylen = (size_t)snprintf(body, sizeof body, "revision %s\n", rev ? rev : "");
	if (bodylen >= sizeof body) bodylen = sizeof body - 1;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = onsignal; /* no SA_RESTART: poll returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int ln = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ln < 0) die("socket");
	int one = 1;
	setsockopt(ln, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in addr;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	char *rest;
	long p = strtol(port, &rest, 10);
	if (*rest || p < 1 || p > 65535) { fprintf(stderr, "app: PORT %s is not a port number\n", port); return 1; }
	addr.sin_port = htons((unsigned short)p);
	if (bind(ln, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
	if (listen(ln, 128) < 0) die("listen");

	for (int i = 0; i < MAXCONN; i++) conns[i].fd = -1;
	struct pollfd pfd[MAXCONN + 1];
	while (!stop) {
		int n = 0;
		pfd[n].fd = ln;
		pfd[n].events = POLLIN;
		n++;
		int idx[MAXCONN + 1];
		for (int i = 0; i < MAXCONN; i++) {
			if (conns[i].fd < 0) continue;
			pfd[n].fd = conns[i].fd;
			pfd[n].events = POLLIN;
			idx[n] = i;
			n++;
		}
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR) continue;
			die("poll");
		}
		for (int k = 1; k < n; k++) {
			if (!pfd[k].revents) continue;
			struct conn *c = &conns[idx[k]];
			ssize_t r = read(c->fd, c->buf + c->len, BUFSZ - c->len);
			if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
			if (r <= 0) { close(c->fd); c->fd = -1; continue; }
			c->len += (size_t)r;
			if (answer(c) < 0) { close(c->fd); c->fd = -1; }
		}
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(ln, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0) continue;
			int slot = -1;
			for (int i = 0; i < MAXCONN; i++) if (conns[i].fd < 0) { slot = i; break; }
			if (slot < 0) { close(fd); continue; } /* full: the peer retries */
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			conns[slot].fd = fd;
			conns[slot].len = 0;
		}
	}
	return 0;
}
