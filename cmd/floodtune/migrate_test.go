package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestMigrateRoundTrip(t *testing.T) {
	t.Parallel()
	url := "sqlite:" + filepath.Join(t.TempDir(), "ft.db")
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "status"}, "001      init  no"},
		{[]string{"migrate"}, "applied 001_init"},
		{[]string{"migrate", "up"}, "nothing to up"},
		{[]string{"migrate", "down"}, "reverted 001_init"},
		{[]string{"migrate", "down"}, "nothing to down"},
		{[]string{"migrate", "up"}, "applied 001_init"},
	} {
		code, out, errOut := runCLI(t, append(step.args, "--storage", url)...)
		if code != 0 || !strings.Contains(out, step.want) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want %q", step.args, code, out, errOut, step.want)
		}
	}
}

func TestStorageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"an unknown scheme is bad input", []string{"migrate", "status", "--storage", "mysql://db"}, 2, "postgres://, postgresql:// or sqlite:"},
		{"an unknown action is bad input", []string{"migrate", "sideways", "--storage", "sqlite::memory:"}, 2, "invalid argument"},
		{"a negative target is bad input", []string{"migrate", "--to", "-1", "--storage", "sqlite::memory:"}, 2, "--to"},
		{"an unreachable server is an error that hides the password", []string{"migrate", "status", "--storage", "postgres://u:hunter2@127.0.0.1:1/db"}, 1, "postgres://u:xxxxx@127.0.0.1:1/db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want %d and one line with %q", code, errOut, tc.code, tc.want)
			}
			if strings.Contains(errOut, "hunter2") {
				t.Fatalf("the password leaked: %q", errOut)
			}
		})
	}
}
