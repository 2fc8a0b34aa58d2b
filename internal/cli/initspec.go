package cli

import (
	"fmt"
	"strconv"
	"strings"

	"bluegreen/internal/appspec"
)

// initSpec is what `bluegreen init` writes into bluegreen.yaml.
type initSpec struct {
	App        string
	Command    []string // nil: not known yet, a placeholder the validator refuses
	CommandWhy string   // a comment on the command line
	PortEnv    string   // the variable the app reads its port from
	HealthPath string
	From       string         // the appspec converted, "" for none
	Hooks      []appspec.Hook // its hooks
}

// commentCol is the column of the comments after values.
const commentCol = 35

// line writes "text   # comment", the comment aligned.
func line(b *strings.Builder, text, comment string) {
	b.WriteString(text)
	if comment != "" {
		b.WriteString(strings.Repeat(" ", max(1, commentCol-len(text))))
		b.WriteString("# " + comment)
	}
	b.WriteByte('\n')
}

// render writes the spec with comments that say what each part does.
func (s initSpec) render() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# bluegreen.yaml of %s: how bluegreen runs it and moves traffic to a new\n", s.App)
	b.WriteString("# revision. Check it with `bluegreen validate --print`, which shows every\n")
	b.WriteString("# default too; every key is described in docs/spec.md.\n")
	if s.From != "" {
		fmt.Fprintf(&b, "# Converted from %s by `bluegreen init --from`, which also said what\n", s.From)
		b.WriteString("# of it has no equivalent here.\n")
	}
	line(&b, "app: "+s.App, "")
	b.WriteString("\nprocess:\n")
	if s.Command == nil {
		b.WriteString("  # No command yet: fill in the program and its arguments, like\n")
		b.WriteString("  # [\"./shop\", \"--listen\", \"127.0.0.1:${PORT}\"].")
		if s.From != "" {
			b.WriteString(" An appspec names none:\n")
			b.WriteString("  # its ApplicationStart scripts start the app, while bluegreen starts\n")
			b.WriteString("  # and supervises each instance itself.\n")
		} else {
			b.WriteString("\n")
		}
		line(&b, "  command: []", "")
	} else {
		b.WriteString("  # The program and its arguments (a list, not a shell line), started in\n")
		b.WriteString("  # this directory once per instance. It must listen on 127.0.0.1:${PORT}:\n")
		b.WriteString("  # bluegreen gives each instance its own port in PORT.\n")
		line(&b, "  command: "+flowList(s.Command), s.CommandWhy)
	}
	line(&b, "  instances: 1", "")
	if s.PortEnv != "" && s.PortEnv != "PORT" {
		b.WriteString("  env:\n")
		line(&b, "    "+s.PortEnv+": \"${PORT}\"", "the app reads its port from "+s.PortEnv)
	}
	line(&b, "  stop_timeout: 30s", "after the stop signal (SIGTERM), before SIGKILL")
	b.WriteString("\nrouter:\n")
	line(&b, "  production: 127.0.0.1:8080", "where users reach the live revision")
	line(&b, "  test: 127.0.0.1:8081", "serves only a new revision, for smoke tests")
	b.WriteString("\nhealth:\n")
	line(&b, "  path: "+s.HealthPath, "answers 2xx or 3xx once an instance can serve")
	b.WriteString("\nstrategy:\n")
	line(&b, "  preset: AllAtOnce", "or Canary10Percent5Minutes, Linear10PercentEvery1Minute")
	line(&b, "  # approval: manual", "wait for `bluegreen promote` before production traffic")
	b.WriteString("\n")
	if len(s.Hooks) > 0 {
		s.renderHooks(&b)
	} else {
		line(&b, "# hooks:", "commands at lifecycle events (CodeDeploy's names)")
		line(&b, "#   after_allow_test_traffic:", "smoke tests; they get BG_TEST_URL")
		b.WriteString("#     - { run: ./hooks/smoke.sh, timeout: 2m }\n")
	}
	b.WriteString("\n")
	line(&b, "bake: 5m", "green holds all traffic this long, blue warm, before it is live")
	b.WriteString("retire:\n")
	line(&b, "  keep_blue: 1h", "blue stays warm this long for an instant rollback")
	return []byte(b.String())
}

// renderHooks writes the appspec's hooks under bluegreen's events.
func (s initSpec) renderHooks(b *strings.Builder) {
	b.WriteString("hooks:\n")
	fmt.Fprintf(b, "  # From %s: each CodeDeploy event's scripts under the bluegreen\n", s.From)
	b.WriteString("  # event of the same name, run from the bundle's root.\n")
	for i, h := range s.Hooks {
		if i == 0 || s.Hooks[i-1].Event != h.Event {
			comment := h.From
			if h.Event == "application_stop" {
				comment += ": the replaced revision's, before its instances stop"
			}
			line(b, "  "+h.Event+":", comment)
		}
		timeout := ""
		if h.DefaultTimeout {
			timeout = "CodeDeploy's default timeout"
		}
		line(b, fmt.Sprintf("    - { run: %s, timeout: %s }", h.Run, appspec.FormatTimeout(h.Timeout)), timeout)
	}
}

// flowList writes strings as a YAML flow list of double-quoted strings.
func flowList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
