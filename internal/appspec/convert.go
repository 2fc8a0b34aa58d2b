package appspec

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"bluegreen/internal/spec"
)

// Hook is one script of the appspec as a bluegreen hook.
type Hook struct {
	Event string // bluegreen's event, like after_install
	From  string // CodeDeploy's, like AfterInstall
	// Location is the script's clean path in the bundle (scripts/x.sh),
	// and Run the hook's command line (./scripts/x.sh).
	Location string
	Run      string
	Timeout  time.Duration
	// DefaultTimeout: the appspec named no timeout, so Timeout is
	// CodeDeploy's default.
	DefaultTimeout bool
	Runas          string
}

// BluegreenHooks returns every script of the appspec as a bluegreen hook,
// in bluegreen's lifecycle order (spec.Hooks.Events), each event's scripts
// in the appspec's order.
func (a *AppSpec) BluegreenHooks() []Hook {
	byEvent := map[string][]Hook{}
	for _, ev := range a.Hooks {
		to := HookEvent(ev.Name)
		for _, s := range ev.Scripts {
			h := Hook{Event: to, From: ev.Name, Location: path0(s.Location), Timeout: time.Duration(s.Timeout) * time.Second, Runas: s.Runas}
			h.Run = "./" + h.Location
			if s.Timeout == 0 {
				h.Timeout, h.DefaultTimeout = DefaultTimeout*time.Second, true
			}
			byEvent[to] = append(byEvent[to], h)
		}
	}
	var out []Hook
	var none spec.Hooks
	for _, ev := range none.Events() {
		out = append(out, byEvent[ev.Name]...)
	}
	return out
}

// Note is something bluegreen does not do as the appspec says, or a script
// that needs a look: what the appspec (or script) says, and what to do
// instead.
type Note struct {
	Topic string   // files, permissions, runas, file_exists_behavior, or a script and line
	What  []string // what the appspec or the script says, an item each
	Why   string
}

// NotMapped lists the parts of the appspec that have no bluegreen
// equivalent, with what to do instead.
func (a *AppSpec) NotMapped() []Note {
	var notes []Note
	if len(a.Files) > 0 {
		var what []string
		for _, f := range a.Files {
			what = append(what, f.Source+" → "+f.Destination)
		}
		notes = append(notes, Note{Topic: "files", What: what,
			Why: "bluegreen copies nothing into place: each revision runs from its own unpacked directory, " +
				"so the app finds its files relative to its working directory (the bundle's root, or process.dir). " +
				"Files other programs need in place belong to the machine's own setup, not to a revision."})
	}
	if a.FileExistsBehavior != "" {
		notes = append(notes, Note{Topic: "file_exists_behavior", What: []string{a.FileExistsBehavior},
			Why: "Nothing is copied, so nothing is overwritten: every revision has a directory of its own."})
	}
	if len(a.Permissions) > 0 {
		var what []string
		for _, p := range a.Permissions {
			what = append(what, permissionText(p))
		}
		notes = append(notes, Note{Topic: "permissions", What: what,
			Why: "The bundle is unpacked with the modes it was packed with (without setuid, setgid and sticky bits), " +
				"readable and not writable by the app's user: chmod files before deploying, and have the app and its hooks " +
				"write to $TMPDIR or a directory their user owns."})
	}
	if runas := a.runas(); len(runas) > 0 {
		notes = append(notes, Note{Topic: "runas", What: runas,
			Why: "Every hook runs as the app's user, as its instances do: a user of the app's own on a server running as root, " +
				"or the user run_as names in bluegreen.yaml where the server allows it (bluegreen server --allow-run-as); " +
				"root only if the server allows that too."})
	}
	return notes
}

// permissionText describes a permissions entry in one line.
func permissionText(p Permission) string {
	var attrs []string
	add := func(name, v string) {
		if v != "" {
			attrs = append(attrs, name+" "+v)
		}
	}
	add("pattern", p.Pattern)
	if len(p.Except) > 0 {
		add("except", strings.Join(p.Except, ", "))
	}
	add("owner", p.Owner)
	add("group", p.Group)
	add("mode", p.Mode)
	if len(p.ACLs) > 0 {
		add("acls", strings.Join(p.ACLs, ", "))
	}
	if c := p.Context; c != nil {
		add("SELinux context", strings.Trim(strings.Join([]string{c.User, c.Type, c.Range}, ":"), ":"))
	}
	if len(p.Type) > 0 {
		add("type", strings.Join(p.Type, ", "))
	}
	if len(attrs) == 0 {
		return p.Object
	}
	return fmt.Sprintf("%s (%s)", p.Object, strings.Join(attrs, ", "))
}

// runas describes the users scripts run as, with their events, in the
// order they first appear: "root: ApplicationStop, BeforeInstall".
func (a *AppSpec) runas() []string {
	var users []string
	events := map[string][]string{}
	for _, ev := range a.Hooks {
		for _, s := range ev.Scripts {
			if s.Runas == "" {
				continue
			}
			if _, ok := events[s.Runas]; !ok {
				users = append(users, s.Runas)
			}
			if !slices.Contains(events[s.Runas], ev.Name) {
				events[s.Runas] = append(events[s.Runas], ev.Name)
			}
		}
	}
	parts := make([]string, len(users))
	for i, u := range users {
		parts[i] = fmt.Sprintf("%s: %s", u, strings.Join(events[u], ", "))
	}
	return parts
}

// FormatTimeout writes a timeout as a spec duration: 300s is 5m, 90s is
// 1m30s, 3600s is 1h.
func FormatTimeout(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
