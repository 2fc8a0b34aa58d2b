// Command app is the smallest app bench/scale deploys by the thousand: an
// HTTP server on 127.0.0.1:$PORT that answers /healthz and, on any other
// path, its revision (BG_REVISION). It keeps nothing and logs nothing, so what the
// benchmark measures is the controller, not the app.
package main

import (
	"net/http"
	"os"
)

func main() {
	version := []byte("revision " + os.Getenv("BG_REVISION") + "\n")
	http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.Write(version) })
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
