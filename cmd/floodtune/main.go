// Command floodtune tunes the flooding level of the flooding regularizer
// (Ishida et al., ICML 2020) together with the other hyperparameters of a
// training run. See `floodtune --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

func main() {
	// A Go program dies of SIGPIPE when it writes to a standard output or
	// error whose reader is gone (`floodtune study optimize s 2>&1 | head`),
	// and a worker that dies so leaves its trials running until their lease
	// ends. Ignored, the signal turns into an EPIPE error of the write,
	// which run's outputs take as "nobody listens": the command stops as on
	// a first Ctrl-C, giving its trials back, and exits with status 141.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitOutputLost is the status of a command whose output was closed under
// it: 128 + SIGPIPE, what a shell reports of a program that SIGPIPE
// killed, so that scripts see what they always saw.
const exitOutputLost = 128 + 13

// run executes the command line and returns the exit status: 0 on success,
// 2 for bad input, 1 for any other failure, 141 when the command stopped
// because its standard output or error was closed (see output). It never
// lets a panic through as a stack trace.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out := &output{w: stdout, name: "standard output", lost: cancel}
	errOut := &output{w: stderr, name: "standard error", lost: cancel}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(errOut, "floodtune: internal error: %s\n", oneLine(fmt.Sprint(r)))
			code = 1
		}
	}()
	root := newRootCmd(out, errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	lost := out.failed()
	if lost == nil {
		lost = errOut.failed()
	}
	if lost != nil && (err == nil || errors.As(err, new(*outputLostError)) || errors.Is(err, context.Canceled)) {
		// Nobody reads what the command says: a closed pipe is the
		// reader's choice (head), so it ends quietly, as SIGPIPE ended it;
		// any other failure to write is said where it still can be.
		if errors.Is(lost, syscall.EPIPE) {
			return exitOutputLost
		}
		fmt.Fprintf(errOut, "floodtune: %s\n", oneLine(lost.Error()))
		return 1
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(errOut, "floodtune: %s\n", oneLine(err.Error()))
	return exitCode(err)
}

// output is standard output or standard error as the commands write to it.
// A write that fails means that nobody gets what the command says any more
// (the reader of a pipe exited: EPIPE, as main ignores SIGPIPE; a terminal
// that went away; a full disk): the first failure cancels the command's
// context with an *outputLostError as its cause, as a first Ctrl-C cancels
// it, so that a worker gives its running trials back and stops instead of
// dying with them or training for nobody; later writes fail at once.
type output struct {
	w    io.Writer
	name string
	lost context.CancelCauseFunc

	mu  sync.Mutex
	err error
}

// outputLostError is the cause of a command's end when its output failed.
type outputLostError struct {
	name string
	err  error
}

func (e *outputLostError) Error() string { return fmt.Sprintf("cannot write to %s: %v", e.name, e.err) }
func (e *outputLostError) Unwrap() error { return e.err }

func (o *output) Write(p []byte) (int, error) {
	if err := o.failed(); err != nil {
		return 0, err
	}
	n, err := o.w.Write(p)
	if err != nil {
		o.mu.Lock()
		if o.err == nil {
			o.err = &outputLostError{name: o.name, err: err}
		}
		err = o.err
		o.mu.Unlock()
		o.lost(err)
	}
	return n, err
}

// failed returns the error of the first write that failed, or nil.
func (o *output) failed() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// file returns the *os.File written to, or nil (for isTerminal).
func (o *output) file() *os.File {
	f, _ := o.w.(*os.File)
	return f
}

// outputLost reports whether ctx ended because the command's output was
// closed.
func outputLost(ctx context.Context) bool {
	return errors.As(context.Cause(ctx), new(*outputLostError))
}

// oneLine folds a multi-line error (drivers nest causes on new lines) into
// one line, and escapes what a terminal would interpret (see printable):
// an error quotes paths, URLs, flags and driver messages as they came.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return printable(strings.Join(lines, " "))
}
