package appspec

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
)

// serviceControl finds a line that starts or stops a long-running program
// through a service manager or in the background. The verb is in the group
// named verb.
var serviceControl = []*regexp.Regexp{
	regexp.MustCompile(`\bsystemctl\s+(?:-\S+\s+)*(?P<verb>start|restart|try-restart|reload-or-restart|stop)\s+\S+`),
	regexp.MustCompile(`\bservice\s+\S+\s+(?P<verb>start|restart|stop)\b`),
	regexp.MustCompile(`\b(?:initctl|supervisorctl|pm2|forever)\s+(?P<verb>start|restart|stop)\b.*`),
	regexp.MustCompile(`\bstart-stop-daemon\b.*--(?P<verb>start|stop)\b.*`),
	regexp.MustCompile(`\b(?P<verb>nohup)\b.*`),
}

// codedeployVars are the variables CodeDeploy's agent gives scripts, with
// bluegreen's nearest equivalent.
var codedeployVars = []struct {
	name, instead string
	re            *regexp.Regexp
}{
	{"LIFECYCLE_EVENT", "$BG_LIFECYCLE_EVENT for $LIFECYCLE_EVENT (it holds bluegreen's event names, like after_install)", varRef("LIFECYCLE_EVENT")},
	{"DEPLOYMENT_ID", "$BG_DEPLOYMENT_ID for $DEPLOYMENT_ID", varRef("DEPLOYMENT_ID")},
	{"APPLICATION_NAME", "$BG_APP for $APPLICATION_NAME", varRef("APPLICATION_NAME")},
	{"DEPLOYMENT_GROUP_NAME", "$BG_APP for $DEPLOYMENT_GROUP_NAME (bluegreen has no deployment groups)", varRef("DEPLOYMENT_GROUP_NAME")},
	{"DEPLOYMENT_GROUP_ID", "$BG_APP for $DEPLOYMENT_GROUP_ID (bluegreen has no deployment groups)", varRef("DEPLOYMENT_GROUP_ID")},
}

// varRef matches a shell expansion of the variable name: $NAME or ${NAME...}.
func varRef(name string) *regexp.Regexp { return regexp.MustCompile(`\$\{?` + name + `\b`) }

// Inspect looks at the hooks' scripts in the bundle fsys for what works
// under CodeDeploy's agent and not under bluegreen: a script missing or not
// executable, an ApplicationStart script that starts a service and an
// ApplicationStop script that stops one, and CodeDeploy's variables.
func Inspect(fsys fs.FS, hooks []Hook) []Note {
	var notes []Note
	seen := map[string]bool{} // a script named twice is looked at once, per event
	for _, h := range hooks {
		key := h.From + " " + h.Location
		if seen[key] {
			continue
		}
		seen[key] = true
		info, err := fs.Stat(fsys, h.Location)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			notes = append(notes, Note{Topic: h.Location, What: []string{"named by " + h.From + ", is not in the bundle"},
				Why: "bluegreen validate refuses the spec until it is there."})
			continue
		case err != nil:
			notes = append(notes, Note{Topic: h.Location, What: []string{err.Error()}})
			continue
		case info.IsDir():
			notes = append(notes, Note{Topic: h.Location, What: []string{"named by " + h.From + ", is a directory, not a script"},
				Why: "bluegreen validate refuses the spec until it names a script."})
			continue
		case info.Mode().Perm()&0o111 == 0:
			notes = append(notes, Note{Topic: h.Location, What: []string{fmt.Sprintf("is not executable (mode %s)", info.Mode().Perm())},
				Why: "CodeDeploy's agent makes scripts executable before it runs them, bluegreen does not: chmod +x " + h.Location + "."})
		}
		notes = append(notes, inspectScript(fsys, h)...)
	}
	return notes
}

// inspectScript reads one script line by line.
func inspectScript(fsys fs.FS, h Hook) []Note {
	f, err := fsys.Open(h.Location)
	if err != nil {
		return nil
	}
	defer f.Close()
	var notes []Note
	varsLine := 0 // the first line reading one of CodeDeploy's variables
	var names, instead []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		at := fmt.Sprintf("%s:%d", h.Location, n)
		if what, verb := serviceLine(line); what != "" {
			switch {
			case h.From == "ApplicationStart" && verb != "stop":
				notes = append(notes, Note{Topic: at, What: []string{fmt.Sprintf("starts a program at ApplicationStart (%s)", what)},
					Why: "If that is this app, take it out: bluegreen starts each instance itself, from process.command, " +
						"and supervises it; a copy started here would run outside its control."})
			case h.From == "ApplicationStop" && verb == "stop":
				notes = append(notes, Note{Topic: at, What: []string{fmt.Sprintf("stops a service at ApplicationStop (%s)", what)},
					Why: "If that service is this app, take it out: bluegreen stops the replaced revision's instances itself, right after application_stop."})
			}
		}
		for _, v := range codedeployVars {
			if !slices.Contains(names, "$"+v.name) && v.re.MatchString(line) {
				if varsLine == 0 {
					varsLine = n
				}
				names, instead = append(names, "$"+v.name), append(instead, v.instead)
			}
		}
	}
	if varsLine > 0 {
		notes = append(notes, Note{Topic: fmt.Sprintf("%s:%d", h.Location, varsLine),
			What: []string{"reads variables CodeDeploy's agent sets and bluegreen does not: " + strings.Join(names, ", ")},
			Why:  "Use " + strings.Join(instead, ", ") + "."})
	}
	return notes
}

// serviceLine returns the part of line that starts or stops a service, and
// the verb, or "".
func serviceLine(line string) (what, verb string) {
	for _, re := range serviceControl {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		verb = m[re.SubexpIndex("verb")]
		if verb == "nohup" {
			verb = "start"
		}
		return strings.TrimSpace(m[0]), verb
	}
	return "", ""
}
