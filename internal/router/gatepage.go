package router

import (
	"bytes"
	"encoding/json"
	"html"
	"strconv"
	"strings"
)

// acceptKind reads an Accept header: "json" when the client names JSON
// (application/json or a +json type) ahead of HTML, "html" when it names
// HTML (every browser does), else "text" (curl, scripts).
func acceptKind(accept []byte) string {
	lower := bytes.ToLower(accept)
	j := bytes.Index(lower, []byte("json"))
	h := bytes.Index(lower, []byte("text/html"))
	switch {
	case j >= 0 && (h < 0 || j < h):
		return "json"
	case h >= 0:
		return "html"
	}
	return "text"
}

// appendGateJSON is the JSON answer of a gated request.
func appendGateJSON(b []byte, appName, code, msg, retryAfter string) []byte {
	secs, _ := strconv.Atoi(retryAfter)
	out, _ := json.Marshal(struct {
		Code       string `json:"code"`
		App        string `json:"app"`
		Message    string `json:"message"`
		RetryAfter int    `json:"retry_after_seconds"`
	}{code, appName, msg, secs})
	return append(append(b, out...), '\n')
}

// gateHTML is the page a browser shows for a gated request.
func gateHTML(code, msg string) string {
	title := "Down for maintenance"
	if code == "paused" {
		title = "Please try again"
	}
	var b strings.Builder
	b.WriteString(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>`)
	b.WriteString(title)
	b.WriteString(`</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:15vh auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}p{line-height:1.5;white-space:pre-line}</style>
</head><body>
<h1>`)
	b.WriteString(title)
	b.WriteString("</h1>\n<p>")
	b.WriteString(html.EscapeString(msg))
	b.WriteString("</p>\n</body></html>\n")
	return b.String()
}
