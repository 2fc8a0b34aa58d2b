package params

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
)

// MinRedactLen is the shortest secret a Redactor hides. Shorter values
// would match all over ordinary output ("1", "on") and are not kept secret
// by hiding them anyway.
const MinRedactLen = 4

// Redactor replaces known secret values with Redacted in text: in a hook's
// output before it is stored, in an instance's output before anyone reads
// it. It matches the values as they are, not encoded (base64, URL escapes),
// so it is a safety net for output, not a way to make printing secrets safe.
// The zero value and nil redact nothing.
type Redactor struct {
	r       *strings.Replacer
	longest int
}

// NewRedactor returns a redactor of the given values. A value of several
// lines is also hidden line by line, so output that is handled a line at
// a time (an instance's log) loses every line of it.
func NewRedactor(secrets ...string) *Redactor {
	seen := map[string]bool{}
	var needles []string
	add := func(s string) {
		if len(s) >= MinRedactLen && !seen[s] {
			seen[s] = true
			needles = append(needles, s)
		}
	}
	for _, s := range secrets {
		add(s)
		if strings.ContainsAny(s, "\r\n") {
			for line := range strings.Lines(s) {
				add(strings.TrimRight(line, "\r\n"))
			}
		}
	}
	if len(needles) == 0 {
		return &Redactor{}
	}
	// Longest first: where one secret contains another, the whole of the
	// longer one goes.
	slices.SortFunc(needles, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	pairs := make([]string, 0, 2*len(needles))
	for _, n := range needles {
		pairs = append(pairs, n, Redacted)
	}
	return &Redactor{r: strings.NewReplacer(pairs...), longest: len(needles[0])}
}

// Redact returns s with every known secret replaced by Redacted.
func (r *Redactor) Redact(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// TailStart says where a safe tail of s begins, when s is the end of a
// longer output whose first part was dropped: s may begin with the rest of
// a secret cut in two, which no longer matches, so its partial first line
// goes as well (or, with no line break in s, one byte less than the
// longest secret). Without secrets to hide, nothing goes.
func (r *Redactor) TailStart(s string) int {
	if r == nil || r.r == nil {
		return 0
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return i + 1
	}
	return min(len(s), r.longest-1)
}

// Redactor returns a redactor of every secure value the store holds, every
// version of every param (deleted ones included: a revision may still pin
// them), and of extra values (the server's admin token).
func (s *Store) Redactor(ctx context.Context, extra ...string) (*Redactor, error) {
	latest, err := s.st.LatestParams(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("reading secure params to redact: %w", err)
	}
	secrets := slices.Clone(extra)
	for _, l := range latest {
		rows, err := s.st.ParamHistory(ctx, l.Name)
		if err != nil {
			return nil, fmt.Errorf("reading secure params to redact: %w", err)
		}
		for _, row := range rows { // without values
			if Type(row.Type) != TypeSecure {
				continue
			}
			p, err := s.Get(ctx, row.Name, row.Version)
			if err != nil {
				return nil, fmt.Errorf("reading secure params to redact: %w", err)
			}
			secrets = append(secrets, p.Value.Reveal())
		}
	}
	return NewRedactor(secrets...), nil
}
