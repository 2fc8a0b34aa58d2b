package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"bluegreen/internal/appspec"
	"bluegreen/internal/spec"
)

// initOptions are the inputs of `bluegreen init`. The answers left empty
// are found (the command) or take their defaults, or are asked for when
// Ask is set.
type initOptions struct {
	Dir        string // where bluegreen.yaml goes; "" when not given
	From       string // a CodeDeploy appspec.yml (or the directory holding one)
	App        string
	Command    string // a command line, split into words like a shell does
	PortEnv    string
	HealthPath string
	Force      bool
	// Ask: questions go to stdout and answers come from In (a terminal).
	Ask bool
	In  io.Reader
}

func newInitCmd() *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Write a starting bluegreen.yaml for a directory, or convert a CodeDeploy appspec.yml",
		Long: `Write DIR/bluegreen.yaml (DIR defaults to the current directory) for the app
in DIR. The command that runs it is found in DIR: the web: line of a
Procfile, the start script of a package.json, a Go main package, or an
executable file. On a terminal, init asks for the app's name, its command,
the variable it reads its port from and its health check path, each with
its default in brackets; otherwise it asks nothing. Flags give the same
answers. An existing bluegreen.yaml is only replaced with --force.

--from converts a CodeDeploy appspec.yml (the EC2/on-premises form): every
lifecycle event's scripts become the bluegreen hooks of the same event
(ApplicationStop becomes application_stop), and init says what has no
equivalent (files, permissions, runas) and what to do instead. DIR defaults
to the appspec's directory. An appspec names no command: give it with
--command, or fill in process.command afterwards.`,
		Example: `  bluegreen init
  bluegreen init ./build --app shop --command "./shop --listen 127.0.0.1:\${PORT}"
  bluegreen init --from appspec.yml --command ./shop`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("init takes at most one directory, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Dir = args[0]
			}
			o.In = cmd.InOrStdin()
			// Questions only when a person is there to answer them.
			o.Ask = cmd.InOrStdin() == os.Stdin && isTerminal(os.Stdin) && isTerminal(cmd.OutOrStdout())
			return runInit(cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.From, "from", "", "convert this CodeDeploy appspec.yml (or the directory holding one)")
	f.StringVar(&o.App, "app", "", "the app's name (default: the directory's name)")
	f.StringVar(&o.Command, "command", "", "the command that runs one instance, as a shell would split it")
	f.StringVar(&o.PortEnv, "port-env", "", "the environment variable the app reads its port from (default PORT)")
	f.StringVar(&o.HealthPath, "health-path", "", "the path of the health check (default /healthz)")
	f.BoolVar(&o.Force, "force", false, "replace an existing bluegreen.yaml")
	return cmd
}

// runInit writes the spec and says what it wrote and what to run next.
func runInit(stdout, stderr io.Writer, o initOptions) error {
	var a *appspec.AppSpec
	fromFile := ""
	if o.From != "" {
		var err error
		if fromFile, err = appspecFile(o.From); err != nil {
			return err
		}
		a, err = appspec.ParseFile(fromFile)
		var problems *appspec.Errors
		if errors.As(err, &problems) {
			fmt.Fprintln(stderr, problems.Error())
			return fmt.Errorf("%s: %s", fromFile, plural(len(problems.Problems), "problem"))
		}
		if err != nil {
			return err
		}
	}
	dir := o.Dir
	if dir == "" {
		dir = "."
		if fromFile != "" {
			dir = filepath.Dir(fromFile)
		}
	}
	if info, err := os.Stat(dir); err != nil {
		return usageError{fmt.Errorf("init: %w", err)}
	} else if !info.IsDir() {
		return usageError{fmt.Errorf("init: %s is not a directory", dir)}
	}
	target := filepath.Join(dir, spec.FileName)
	if _, err := os.Stat(target); err == nil && !o.Force {
		return fmt.Errorf("init: %s exists; --force replaces it", target)
	}

	ans, err := initAnswers(stdout, o, dir, a != nil)
	if err != nil {
		return err
	}
	is := initSpec{App: ans.app, Command: ans.command, CommandWhy: ans.why, PortEnv: ans.portEnv, HealthPath: ans.healthPath}
	if a != nil {
		is.From = filepath.Base(fromFile)
		is.Hooks = a.BluegreenHooks()
	}
	data := is.render()
	if err := checkRendered(data, ans.command == nil); err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if o.Force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(target, flags, 0o644)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("init: writing %s: %w", target, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("init: writing %s: %w", target, err)
	}
	r := initReport{out: stdout, dir: dir, target: target, ans: ans, dockerfile: hasDockerfile(dir)}
	if a != nil {
		r.from, r.spec, r.hooks = fromFile, a, is.Hooks
		r.notes = a.NotMapped()
		r.looks = appspec.Inspect(os.DirFS(dir), is.Hooks)
	} else if f, err := appspecFile(dir); err == nil {
		r.appspec = f
	}
	r.print()
	return nil
}

// appspecFile is the appspec named by --from: the file, or appspec.yml in
// the directory.
func appspecFile(from string) (string, error) {
	info, err := os.Stat(from)
	if err != nil {
		return "", usageError{fmt.Errorf("init: --from: %w", err)}
	}
	if !info.IsDir() {
		return from, nil
	}
	for _, name := range []string{appspec.FileName, "appspec.yaml", "appspec.json"} {
		if _, err := os.Stat(filepath.Join(from, name)); err == nil {
			return filepath.Join(from, name), nil
		}
	}
	return "", usageError{fmt.Errorf("init: --from: %s holds no %s", from, appspec.FileName)}
}

// checkRendered parses the written spec as `validate` will: only the
// placeholder command may be refused, so that a bug here never writes a
// spec that fails for another reason.
func checkRendered(data []byte, placeholder bool) error {
	_, err := spec.Parse(data, spec.FileName)
	var problems *spec.Errors
	if errors.As(err, &problems) && placeholder && len(problems.Problems) == 1 && problems.Problems[0].Path == "process.command" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("init: the spec it would write is not valid (please report this):\n%w", err)
	}
	return nil
}

// answers are what init writes.
type answers struct {
	app        string
	command    []string // nil: none yet
	why        string   // where the command came from
	todo       string   // what to do with it before deploying
	portEnv    string
	healthPath string
}

// appFromDir makes an app name of a directory's name: lower case, other
// characters as '-', at most 63.
func appFromDir(dir string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(filepath.Base(absOr(dir))) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 63 {
		name = strings.Trim(name[:63], "-")
	}
	if name == "" {
		return "app"
	}
	return name
}

var (
	appNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func checkApp(v string) error {
	if !appNameRE.MatchString(v) {
		return fmt.Errorf("the app's name is 1 to 63 of a-z, 0-9 and '-', not starting or ending with '-'; got %q", v)
	}
	return nil
}

func checkPortEnv(v string) error {
	switch {
	case !envNameRE.MatchString(v):
		return fmt.Errorf("the port variable is a name of letters, digits and '_', like PORT or HTTP_PORT; got %q", v)
	case strings.HasPrefix(v, "BG_"):
		return fmt.Errorf("the port variable may not start with BG_, which bluegreen keeps for its own; got %q", v)
	}
	return nil
}

func checkHealthPath(v string) error {
	if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, " \t\n\"'#") {
		return fmt.Errorf("the health check path starts with / and has no spaces or quotes, like /healthz; got %q", v)
	}
	return nil
}

// initAnswers settles each answer: a flag, else (on a terminal) the
// person's answer, else the default. A bad flag is a usage error; a bad
// answer is asked again.
func initAnswers(stdout io.Writer, o initOptions, dir string, fromAppspec bool) (answers, error) {
	ans := answers{app: appFromDir(dir), portEnv: "PORT", healthPath: "/healthz"}
	if fromAppspec {
		ans.why = "from --command"
	} else if d, ok := detectCommand(dir); ok {
		ans.command, ans.why, ans.todo = d.argv, d.why, d.todo
	}
	q := &asker{out: stdout, in: bufio.NewReader(o.In), on: o.Ask}
	if q.on {
		fmt.Fprintln(stdout, "Answer each question, or press Enter for the value in brackets.")
	}
	var err error
	if ans.app, err = q.ask("App name", o.App, "--app", ans.app, checkApp); err != nil {
		return ans, err
	}
	defCmd := ""
	if ans.command != nil {
		defCmd = joinCommand(ans.command)
	}
	cmdLine, err := q.ask("Command that runs one instance", o.Command, "--command", defCmd, func(v string) error {
		if v == "" {
			return nil
		}
		_, err := splitCommand(v)
		return err
	})
	if err != nil {
		return ans, err
	}
	switch {
	case cmdLine == "":
		ans.command, ans.todo = nil, ""
	case cmdLine != defCmd:
		ans.command, _ = splitCommand(cmdLine)
		ans.why, ans.todo = "from --command", ""
		if o.Command == "" {
			ans.why = "your answer"
		}
	}
	if ans.portEnv, err = q.ask("Environment variable it reads its port from", o.PortEnv, "--port-env", ans.portEnv, checkPortEnv); err != nil {
		return ans, err
	}
	if ans.healthPath, err = q.ask("Health check path", o.HealthPath, "--health-path", ans.healthPath, checkHealthPath); err != nil {
		return ans, err
	}
	if q.on {
		fmt.Fprintln(stdout)
	}
	return ans, nil
}

// asker asks questions on a terminal; when off, every answer is its flag
// or its default.
type asker struct {
	out io.Writer
	in  *bufio.Reader
	on  bool
}

// maxTries bounds how often a question is asked again after bad answers.
const maxTries = 3

// ask returns the flag's value when given (checked: a bad one is a usage
// error), else the person's answer, else def.
func (q *asker) ask(question, flagValue, flag, def string, check func(string) error) (string, error) {
	if flagValue != "" {
		if err := check(flagValue); err != nil {
			return "", usageError{fmt.Errorf("init: %s: %v", flag, err)}
		}
		return flagValue, nil
	}
	if !q.on {
		return def, nil
	}
	prompt := fmt.Sprintf("%s [%s]: ", question, def)
	if def == "" {
		prompt = question + " (empty: fill it in later): "
	}
	for try := 1; ; try++ {
		fmt.Fprint(q.out, prompt)
		text, err := q.in.ReadString('\n')
		if err != nil && (err != io.EOF || text == "") {
			fmt.Fprintln(q.out)
			return "", fmt.Errorf("init: no answer to %q (end of input); nothing written", question)
		}
		v := strings.TrimSpace(text)
		if v == "" {
			v = def
		}
		err = check(v)
		if err == nil {
			return v, nil
		}
		fmt.Fprintf(q.out, "  %v\n", err)
		if try == maxTries {
			return "", fmt.Errorf("init: %v; nothing written", err)
		}
	}
}
