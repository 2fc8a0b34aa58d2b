package cli

import (
	"fmt"
	"strings"
	"time"

	"bluegreen/internal/api"
)

// renderCertificates shows each HTTPS host: how long its certificate lasts,
// or why it has none and when the next order starts.
func renderCertificates(b *strings.Builder, st api.Status, now time.Time) {
	if len(st.Certificates) == 0 {
		return
	}
	b.WriteString("certificates:\n")
	for _, c := range st.Certificates {
		var notes []string
		if !c.NotAfter.IsZero() {
			notes = append(notes, "valid until "+c.NotAfter.UTC().Format(time.RFC3339))
		}
		if c.State == "valid" && !c.RenewAt.IsZero() && !now.IsZero() {
			notes = append(notes, "renewal "+untilDays(c.RenewAt, now))
		}
		if c.Error != "" {
			notes = append(notes, c.Error)
		}
		if !c.NextTry.IsZero() && !now.IsZero() {
			notes = append(notes, "next try "+until(c.NextTry, now))
		}
		fmt.Fprintf(b, "  %-30s %-4s %-9s %s\n", c.Host, c.Source, c.State, strings.Join(notes, "; "))
	}
}

// untilDays is until, in whole days past two days: certificates live for
// months.
func untilDays(t, now time.Time) string {
	if d := t.Sub(now); d >= 48*time.Hour {
		return fmt.Sprintf("in %dd", int(d.Hours()/24))
	}
	return until(t, now)
}
