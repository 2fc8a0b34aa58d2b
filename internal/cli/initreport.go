package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"bluegreen/internal/appspec"
)

// initReport is what `bluegreen init` prints once the file is written.
type initReport struct {
	out        io.Writer
	dir        string // where the spec went, as the user named it
	target     string
	ans        answers
	dockerfile bool
	appspec    string // an appspec.yml init was not asked to convert
	// With --from:
	from  string
	spec  *appspec.AppSpec
	hooks []appspec.Hook
	notes []appspec.Note // not mapped
	looks []appspec.Note // scripts to look at
}

// reportWidth is where the report's prose wraps.
const reportWidth = 80

func (r initReport) print() {
	w := r.out
	if r.spec != nil {
		fmt.Fprintf(w, "converted %s (CodeDeploy, EC2/on-premises) into %s (app %s)\n", r.from, r.target, r.ans.app)
	} else {
		fmt.Fprintf(w, "wrote %s (app %s)\n", r.target, r.ans.app)
	}
	r.printHooks()
	r.printRun()
	r.printNotes("not mapped:", r.notes)
	r.printNotes("look at:", r.looks)
	r.printNext()
}

// printHooks lists each appspec script with the event it now runs at.
func (r initReport) printHooks() {
	if r.spec == nil {
		return
	}
	w := r.out
	if len(r.hooks) == 0 {
		fmt.Fprintln(w, "hooks: none (the appspec has no scripts)")
		return
	}
	fmt.Fprintln(w, "hooks (CodeDeploy event → bluegreen event, script, timeout):")
	fromW, toW, runW := 0, 0, 0
	for _, h := range r.hooks {
		fromW, toW, runW = max(fromW, len(h.From)), max(toW, len(h.Event)), max(runW, len(h.Run))
	}
	stop := false
	for _, h := range r.hooks {
		timeout := appspec.FormatTimeout(h.Timeout)
		if h.DefaultTimeout {
			timeout += " (CodeDeploy's default)"
		}
		fmt.Fprintf(w, "  %-*s → %-*s  %-*s  %s\n", fromW, h.From, toW, h.Event, runW, h.Run, timeout)
		stop = stop || h.Event == "application_stop"
	}
	if stop {
		wrap(w, "  ", "  ", "application_stop runs the hooks of the revision being replaced, from its own directory, after it is drained and just before its instances stop; a first deployment runs none.")
	}
}

// printRun says how the app is run and checked.
func (r initReport) printRun() {
	w := r.out
	a := r.ans
	const label, more = "command  ", "         "
	switch {
	case a.command != nil:
		// As it runs: bluegreen's $$ is a plain $ by then.
		wrap(w, label, more, strings.ReplaceAll(joinCommand(a.command), "$$", "$")+": "+a.why)
	case r.spec != nil:
		fmt.Fprintln(w, label+"none yet")
	default:
		wrap(w, label, more, "none yet: found no Procfile web: line, package.json start script, Go main package or executable file")
	}
	if r.spec != nil {
		wrap(w, more, more, "An appspec names no command: its ApplicationStart scripts start the app, while bluegreen starts each instance from process.command and supervises it.")
	}
	if a.command == nil {
		wrap(w, more, more, "Fill in process.command (bluegreen validate refuses the file until then), or run init again with --command and --force.")
	}
	if a.todo != "" {
		wrap(w, more, more, "Then "+a.todo+".")
	}
	if r.spec == nil && r.appspec != "" {
		wrap(w, more, more, fmt.Sprintf("There is a CodeDeploy %s: bluegreen init --from %s converts its hooks.", filepath.Base(r.appspec), r.appspec))
	}
	if r.dockerfile {
		wrap(w, more, more, "There is a Dockerfile: this spec runs the app as a local process. To run its image instead, build it and write platform: docker with docker.image in place of process (see docs/spec.md).")
	}
	if a.portEnv == "PORT" {
		wrap(w, "port     ", more, "the app listens on 127.0.0.1:$PORT, a port bluegreen picks per instance")
	} else {
		wrap(w, "port     ", more, fmt.Sprintf("the app listens on 127.0.0.1:$%s, which bluegreen sets to the port it picks per instance", a.portEnv))
	}
	wrap(w, "health   ", more, fmt.Sprintf("GET %s answers 2xx or 3xx once an instance can serve", a.healthPath))
}

func (r initReport) printNotes(title string, notes []appspec.Note) {
	if len(notes) == 0 {
		return
	}
	fmt.Fprintln(r.out, title)
	for _, n := range notes {
		if len(n.What) == 1 {
			wrap(r.out, "  ", "      ", n.Topic+": "+n.What[0])
		} else {
			fmt.Fprintf(r.out, "  %s:\n", n.Topic)
			for _, item := range n.What {
				wrap(r.out, "    - ", "      ", item)
			}
		}
		if n.Why != "" {
			wrap(r.out, "    ", "    ", n.Why)
		}
	}
}

// printNext names the commands to run next.
func (r initReport) printNext() {
	w := r.out
	arg := ""
	if r.dir != "" && r.dir != "." {
		arg = " " + r.dir
	}
	fmt.Fprintln(w, "next:")
	if r.ans.command == nil {
		fmt.Fprintf(w, "  edit %s: process.command\n", r.target)
	}
	fmt.Fprintf(w, "  bluegreen validate%s --print    check it and see every default\n", arg)
	fmt.Fprintf(w, "  bluegreen deploy%s --wait       with `bluegreen server` running\n", arg)
}

// wrap writes text's words wrapped at reportWidth: the first line starts
// with first, the others with rest.
func wrap(w io.Writer, first, rest, text string) {
	line := first
	empty := true
	for _, word := range strings.Fields(text) {
		switch {
		case empty:
			line += word
			empty = false
		case len(line)+1+len(word) > reportWidth:
			fmt.Fprintln(w, line)
			line = rest + word
		default:
			line += " " + word
		}
	}
	fmt.Fprintln(w, line)
}

// splitCommand splits a command line into words as a shell does with
// quotes and backslashes, without expanding anything; $PORT becomes
// ${PORT}, the form bluegreen expands.
func splitCommand(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("the command has an unclosed ' quote")
			}
			cur.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(line[i])
			}
			if i == len(line) {
				return nil, errors.New(`the command has an unclosed " quote`)
			}
			inWord = true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("the command is empty")
	}
	for i, wd := range words {
		words[i] = portVar.ReplaceAllString(wd, "$${PORT}")
	}
	return words, nil
}

// joinCommand writes an argv as a shell line, quoting the words that need it.
func joinCommand(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`;&|<>()*?[]#~{}") {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
