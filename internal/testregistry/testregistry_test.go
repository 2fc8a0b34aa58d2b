package testregistry

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"bluegreen/internal/freeport"
)

// get asks for GET /v2/, the registry API's version check, with the given
// credentials (none when user is empty).
func get(t *testing.T, r *Registry, user, password string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", r.URL()+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestStartAcceptsOnlyItsCredentials(t *testing.T) {
	r := Start(t)
	if !strings.HasPrefix(r.Addr, "127.0.0.1:") || r.URL() != "http://"+r.Addr {
		t.Fatalf("Addr %q, URL %q", r.Addr, r.URL())
	}
	if r.Username == "" || r.Password == "" {
		t.Fatalf("credentials %q / %q", r.Username, r.Password)
	}

	resp := get(t, r, "", "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without credentials: %s", resp.Status)
	}
	// The challenge is what makes a client (docker pull) send credentials.
	if c := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(c, "Basic ") {
		t.Fatalf("without credentials: WWW-Authenticate %q", c)
	}

	if resp := get(t, r, r.Username, r.Password); resp.StatusCode != http.StatusOK {
		t.Fatalf("with the right credentials: %s\n%s", resp.Status, r.Log())
	}
	if resp := get(t, r, r.Username, r.Password+"x"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("with a wrong password: %s", resp.Status)
	}
	if resp := get(t, r, "someone", r.Password); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("with a wrong user: %s", resp.Status)
	}
	if log := r.Log(); !strings.Contains(log, "user failed to authenticate") {
		t.Fatalf("the log does not show the refused password:\n%s", log)
	}
}

func TestStartAnonymousNeedsNoCredentials(t *testing.T) {
	r := StartAnonymous(t)
	if r.Username != "" || r.Password != "" {
		t.Fatalf("credentials %q / %q", r.Username, r.Password)
	}
	if resp := get(t, r, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("without credentials: %s", resp.Status)
	}
}

// Two registries in one test are two servers with their own credentials.
func TestTwoRegistriesAreApart(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr == b.Addr || a.Password == b.Password {
		t.Fatalf("a %s %q, b %s %q", a.Addr, a.Password, b.Addr, b.Password)
	}
	if resp := get(t, b, a.Username, a.Password); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("b with a's credentials: %s", resp.Status)
	}
}

// A port taken between being picked and being bound, here by a server that
// answers /v2/ as a registry would, is given up for another.
func TestTakenPortIsGivenUp(t *testing.T) {
	impostor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="impostor"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer impostor.Close()
	taken := impostor.Listener.Addr().String()
	var picked []string
	pickAddr = func(t testing.TB) string {
		addr := freeport.Must(t)
		if len(picked) == 0 {
			addr = taken
		}
		picked = append(picked, addr)
		return addr
	}
	defer func() { pickAddr = func(t testing.TB) string { return freeport.Must(t) } }()

	r := Start(t)
	if r.Addr == taken || len(picked) != 2 {
		t.Fatalf("registry on %s after trying %v (%s was taken)", r.Addr, picked, taken)
	}
	if resp := get(t, r, r.Username, r.Password); resp.StatusCode != http.StatusOK {
		t.Fatalf("with the right credentials: %s", resp.Status)
	}
}
