package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"mvdan.cc/sh/v3/syntax"
)

// Invocation is one floodtune command line of a container: the container's
// own arguments (the image's entrypoint is floodtune), or a floodtune call
// inside its /bin/sh -c script.
type Invocation struct {
	Args  []string // what follows the program's name
	Shell bool     // a call inside a shell script
}

func (inv Invocation) String() string {
	return "floodtune " + strings.Join(inv.Args, " ")
}

// Shells are the command lines that run a script: the image is
// debian:bookworm-slim, whose /bin/sh is dash.
var shells = [][]string{{"/bin/sh", "-c"}, {"sh", "-c"}}

// floodtuneProgram reports whether word runs floodtune (the entrypoint of
// the image, on its PATH).
func floodtuneProgram(word string) bool {
	return word == "floodtune" || word == "/usr/local/bin/floodtune"
}

// Invocations returns the floodtune command lines that container c runs. A
// container runs floodtune when it has no command (the image's entrypoint
// is /usr/local/bin/floodtune), when its command is floodtune, or through
// /bin/sh -c SCRIPT, whose every floodtune call is returned; any other
// command is an error, as is a script without a floodtune call or with a
// word that only the shell could know (a variable, a command substitution),
// since such a line cannot be checked.
func Invocations(c corev1.Container) ([]Invocation, error) {
	argv := append(append([]string{}, c.Command...), c.Args...)
	for _, a := range argv {
		// Kubernetes expands $(VAR) in command and args itself; such a
		// line cannot be checked before it runs (a shell's $(...) and
		// $((...)) are left alone: kubelet leaves names it does not know).
		if m := kubeVar.FindString(a); m != "" {
			return nil, fmt.Errorf("%q: Kubernetes variable expansion is not checked: write the value", m)
		}
	}
	if len(c.Command) == 0 {
		return []Invocation{{Args: c.Args}}, nil
	}
	if floodtuneProgram(c.Command[0]) {
		return []Invocation{{Args: argv[1:]}}, nil
	}
	for _, sh := range shells {
		if len(argv) == len(sh)+1 && slices.Equal(argv[:len(sh)], sh) {
			invs, err := ShellInvocations(argv[len(sh)])
			if err != nil {
				return nil, err
			}
			if len(invs) == 0 {
				return nil, errors.New("its script runs no floodtune command")
			}
			return invs, nil
		}
	}
	return nil, fmt.Errorf("command %q is neither floodtune nor /bin/sh -c SCRIPT", c.Command)
}

var kubeVar = regexp.MustCompile(`\$\([A-Za-z_][A-Za-z0-9_]*\)`)

// ShellInvocations parses a POSIX shell script and returns its floodtune
// calls, wherever they are (lists, pipelines, loops, conditions,
// subshells).
func ShellInvocations(script string) ([]Invocation, error) {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(script), "")
	if err != nil {
		return nil, fmt.Errorf("parse shell script %q: %w", script, err)
	}
	var invs []Invocation
	var errs []error
	syntax.Walk(f, func(n syntax.Node) bool {
		ce, ok := n.(*syntax.CallExpr)
		if !ok || len(ce.Args) == 0 {
			return true
		}
		words := ce.Args
		if w, ok := literal(words[0]); ok && (w == "exec" || w == "command") && len(words) > 1 {
			words = words[1:]
		}
		prog, ok := literal(words[0])
		if !ok || !floodtuneProgram(prog) {
			return true
		}
		args := make([]string, 0, len(words)-1)
		for _, w := range words[1:] {
			s, ok := literal(w)
			if !ok {
				errs = append(errs, fmt.Errorf("script %q: a floodtune call has a word the shell computes (%s): it cannot be checked", script, wordText(w)))
				return true
			}
			args = append(args, s)
		}
		invs = append(invs, Invocation{Args: args, Shell: true})
		return true
	})
	return invs, errors.Join(errs...)
}

// literal returns the value of a word that has no expansion: plain text,
// single quotes, double quotes around plain text.
func literal(w *syntax.Word) (string, bool) {
	var b strings.Builder
	for _, p := range w.Parts {
		switch p := p.(type) {
		case *syntax.Lit:
			b.WriteString(unescape(p.Value))
		case *syntax.SglQuoted:
			if p.Dollar {
				return "", false
			}
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			for _, q := range p.Parts {
				l, ok := q.(*syntax.Lit)
				if !ok {
					return "", false
				}
				b.WriteString(l.Value)
			}
		default:
			return "", false
		}
	}
	return b.String(), true
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func wordText(w *syntax.Word) string {
	var b bytes.Buffer
	_ = syntax.NewPrinter().Print(&b, w)
	return b.String()
}

// Command is an invocation as floodtune's command tree resolved it.
type Command struct {
	Path  []string          // the subcommands: "study", "optimize"
	Args  []string          // the positional arguments after them
	Flags map[string]string // each flag given, by long name: its value ("true" for a bare bool flag)
}

// Is reports whether the command is floodtune followed by path.
func (c *Command) Is(path ...string) bool { return slices.Equal(c.Path, path) }

func (c *Command) String() string { return strings.Join(append([]string{"floodtune"}, c.Path...), " ") }

// Resolve checks args against the real command tree of the floodtune
// binary bin and returns the command they run.
//
// It runs bin with args and --help appended. cobra parses every flag
// before it prints a command's help, so an unknown flag, a flag of another
// command or a value of the wrong type (--workers abc) exits non-zero.
// --help does not catch everything, though: an unknown subcommand (floodtune
// bogus, floodtune study bogus) or a surplus argument prints the help of the
// parent command and exits 0, since positional arguments are only checked
// when a command runs. So the help's Usage line is read too: it names the
// command that cobra resolved, and its own declaration of its arguments
// (study optimize NAME, migrate [up|down|status], study create NAME --spec
// FILE), against which the remaining positional arguments and the required
// flags are checked. The flags' sections say which flags take a value.
func Resolve(bin string, args []string) (*Command, error) {
	line := "floodtune " + strings.Join(args, " ")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append([]string{}, args...), "--help")...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + os.TempDir()}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: floodtune refuses it (%v): %s", line, err, strings.TrimSpace(stderr.String()))
	}
	help := stdout.String()
	usage, err := usageLines(help)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", line, err)
	}
	// A command with subcommands is a group: floodtune's groups only say
	// that they need a subcommand (and the bare root prints its help).
	group := ""
	for _, l := range usage {
		if strings.HasSuffix(l, " [command]") {
			group = strings.TrimSuffix(l, " [command]")
		}
	}
	useLine := usage[0]
	useLine = strings.TrimSuffix(useLine, " [flags]")
	flags := helpFlags(help)
	c := &Command{Flags: map[string]string{}}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			name, value, hasValue := strings.Cut(a[2:], "=")
			f, ok := flags.long[name]
			if !ok {
				return nil, fmt.Errorf("%s: --%s is not in the help of %q", line, name, useLine)
			}
			switch {
			case hasValue:
			case f.takesValue && i+1 < len(args):
				i++
				value = args[i]
			case f.takesValue:
				return nil, fmt.Errorf("%s: --%s needs a value", line, name)
			default:
				value = "true"
			}
			c.Flags[name] = value
		case strings.HasPrefix(a, "-") && len(a) > 1:
			f, ok := flags.short[a[1:2]]
			if !ok {
				return nil, fmt.Errorf("%s: %s is not in the help of %q", line, a, useLine)
			}
			value := strings.TrimPrefix(a[2:], "=")
			switch {
			case value != "":
			case f.takesValue && i+1 < len(args):
				i++
				value = args[i]
			case f.takesValue:
				return nil, fmt.Errorf("%s: %s needs a value", line, a)
			default:
				value = "true"
			}
			c.Flags[f.name] = value
		default:
			pos = append(pos, a)
		}
	}
	// The command path: floodtune, then the positional arguments that
	// cobra took as subcommands, which the Usage line repeats.
	words := strings.Fields(useLine)
	if len(words) == 0 || words[0] != "floodtune" {
		return nil, fmt.Errorf("%s: unexpected Usage line %q", line, useLine)
	}
	n := 1
	for n < len(words) && n-1 < len(pos) && words[n] == pos[n-1] {
		n++
	}
	c.Path = append([]string{}, pos[:n-1]...)
	c.Args = pos[n-1:]
	if group != "" {
		if len(c.Args) > 0 {
			return nil, fmt.Errorf("%s: %q is no subcommand of %q (floodtune's --help exits 0 for it: its Usage line shows the group it stopped at)", line, c.Args[0], group)
		}
		return nil, fmt.Errorf("%s: resolves to %q, a group of commands that runs none", line, group)
	}
	if err := checkUse(words[n:], c); err != nil {
		return nil, fmt.Errorf("%s: %s (usage: %s)", line, err, useLine)
	}
	return c, nil
}

// usageLines returns the lines under "Usage:" in a cobra help text: the
// command's use line, then "PATH [command]" when it has subcommands.
func usageLines(help string) ([]string, error) {
	lines := strings.Split(help, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "Usage:" {
			continue
		}
		var usage []string
		for _, u := range lines[i+1:] {
			if strings.TrimSpace(u) == "" {
				break
			}
			usage = append(usage, strings.TrimSpace(u))
		}
		if len(usage) > 0 {
			return usage, nil
		}
	}
	return nil, errors.New("the help has no Usage line")
}

type helpFlag struct {
	name       string
	takesValue bool
}

type flagSet struct {
	long  map[string]helpFlag
	short map[string]helpFlag
}

// flagLine is one flag of cobra's Flags and Global Flags sections: pflag
// prints a type after the name of every flag that takes a value, and none
// after a bool's.
var flagLine = regexp.MustCompile(`^\s+(?:-([A-Za-z0-9]), )?--([A-Za-z0-9][A-Za-z0-9_-]*)( [A-Za-z0-9]+)?(?:\s\s|$)`)

func helpFlags(help string) flagSet {
	fs := flagSet{long: map[string]helpFlag{}, short: map[string]helpFlag{}}
	in := false
	for _, l := range strings.Split(help, "\n") {
		switch {
		case l == "Flags:" || l == "Global Flags:":
			in = true
			continue
		case strings.TrimSpace(l) == "":
			in = false
			continue
		}
		if !in {
			continue
		}
		m := flagLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		f := helpFlag{name: m[2], takesValue: m[3] != ""}
		fs.long[m[2]] = f
		if m[1] != "" {
			fs.short[m[1]] = f
		}
	}
	return fs
}

// checkUse checks c's positional arguments and flags against the argument
// part of the command's Usage line: NAME is a required argument, NAME... any
// number of them, [a|b] an optional one of the values given, --flag VALUE a
// required flag, [--flag VALUE] an optional one.
func checkUse(spec []string, c *Command) error {
	var required, optional int
	variadic := false
	var choices [][]string
	var requiredFlags []string
	for i := 0; i < len(spec); i++ {
		w := spec[i]
		switch {
		case strings.HasPrefix(w, "["):
			group := w
			for !strings.HasSuffix(group, "]") && i+1 < len(spec) {
				i++
				group += " " + spec[i]
			}
			inner := strings.TrimSuffix(strings.TrimPrefix(group, "["), "]")
			if strings.HasPrefix(inner, "-") {
				continue // an optional flag
			}
			optional++
			if strings.HasSuffix(inner, "...") {
				variadic = true
			}
			if strings.Contains(inner, "|") && !strings.ContainsAny(inner, " .") && inner == strings.ToLower(inner) {
				choices = append(choices, strings.Split(inner, "|"))
			}
		case strings.HasPrefix(w, "-"):
			name, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
			requiredFlags = append(requiredFlags, name)
			if i+1 < len(spec) && !strings.HasPrefix(spec[i+1], "-") && !strings.HasPrefix(spec[i+1], "[") {
				i++ // the flag's value
			}
		default:
			required++
			if strings.HasSuffix(w, "...") {
				variadic = true
			}
		}
	}
	var errs []string
	switch {
	case len(c.Args) < required:
		errs = append(errs, fmt.Sprintf("%d argument(s) given, %s needs %d", len(c.Args), c, required))
	case !variadic && len(c.Args) > required+optional:
		extra := c.Args[required+optional:]
		errs = append(errs, fmt.Sprintf("%s takes at most %d argument(s), got %d: %q is no subcommand or argument it knows", c, required+optional, len(c.Args), extra[0]))
	}
	for k, ch := range choices {
		if i := required + k; i < len(c.Args) && !slices.Contains(ch, c.Args[i]) {
			errs = append(errs, fmt.Sprintf("%q is not one of %s", c.Args[i], strings.Join(ch, ", ")))
		}
	}
	for _, f := range requiredFlags {
		if _, ok := c.Flags[f]; !ok {
			errs = append(errs, fmt.Sprintf("%s needs --%s", c, f))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// imageIsFloodtune reports whether image is floodtune's (any registry and
// tag).
func imageIsFloodtune(image string) bool {
	name := image
	if i := strings.IndexAny(name, "@"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return path.Base(name) == "floodtune"
}
