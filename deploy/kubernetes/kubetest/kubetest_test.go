package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// base is the kustomize base under test, relative to this package.
const base = ".."

// bin is a floodtune built from this repository by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kubetest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = buildFloodtune(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildFloodtune builds ./cmd/floodtune of the repository (three levels up)
// into dir. It builds from the repository's root, in floodtune's own
// module: from here, ../../../cmd/floodtune is outside this module.
func buildFloodtune(dir string) (string, error) {
	root, err := filepath.Abs(filepath.Join(base, "..", ".."))
	if err != nil {
		return "", err
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.HasPrefix(mod, []byte("module github.com/floodtune/floodtune\n")) {
		return "", fmt.Errorf("%s is not floodtune's repository (go.mod: %v)", root, err)
	}
	out := filepath.Join(dir, "floodtune")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/floodtune")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build floodtune: %v\n%s", err, b)
	}
	return out, nil
}

func load(t *testing.T, dir string) *Manifests {
	t.Helper()
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTheBaseRendersAndDecodesStrictly(t *testing.T) {
	t.Parallel()
	m := load(t, base)
	got := map[string]int{}
	for _, o := range m.Objects {
		got[o.Kind]++
	}
	want := map[string]int{"Secret": 1, "ConfigMap": 1, "Service": 1, "Deployment": 1, "Job": 2, "PodMonitor": 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%d %s(s), want %d (all: %v)", got[k], k, n, got)
		}
	}
	for _, o := range m.Objects {
		if o.Namespace != "" {
			t.Errorf("%s %s: a base leaves the namespace to kubectl -n or an overlay, got %q", o.Kind, o.Name, o.Namespace)
		}
	}
}

func TestTheBasePassesEveryCheck(t *testing.T) {
	t.Parallel()
	m := load(t, base)
	for _, err := range Check(m, bin) {
		t.Error(err)
	}
}

func TestEveryContainerRunsARealFloodtuneCommand(t *testing.T) {
	t.Parallel()
	m := load(t, base)
	got := map[string][]string{}
	for _, p := range m.Pods() {
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			invs, err := Invocations(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, inv := range invs {
				cmd, err := Resolve(bin, inv.Args)
				if err != nil {
					t.Fatal(err)
				}
				got[p.Owner+"/"+c.Name] = append(got[p.Owner+"/"+c.Name], cmd.String())
			}
		}
	}
	want := map[string][]string{
		"Job floodtune-create/migrate":        {"floodtune migrate"},
		"Job floodtune-create/create":         {"floodtune study show", "floodtune study create"},
		"Job floodtune-worker/wait-for-study": {"floodtune study show"},
		"Job floodtune-worker/worker":         {"floodtune study optimize"},
		"Deployment floodtune-serve/serve":    {"floodtune serve"},
	}
	for k, w := range want {
		if !slices.Equal(got[k], w) {
			t.Errorf("%s runs %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("containers %v, want those of %v", got, want)
	}
}

func TestTheStudySpecIsTheExample(t *testing.T) {
	t.Parallel()
	m := load(t, base)
	example, err := os.ReadFile(filepath.Join(base, "..", "..", "examples", "mnist-noise20.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.ConfigMaps) != 1 || m.ConfigMaps[0].Data["study.yaml"] != string(example) {
		t.Error("the ConfigMap's study.yaml differs from examples/mnist-noise20.yaml: copy it again (cp examples/mnist-noise20.yaml deploy/kubernetes/study.yaml)")
	}
}

// The kustomize that kubectl embeds renders the same objects, with the same
// generated names, as the Go API at the version this module uses.
func TestKubectlKustomizeRendersTheSameObjects(t *testing.T) {
	t.Parallel()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	out, err := exec.Command(kubectl, "kustomize", base).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	theirs, err := Decode(bytes.Split(out, []byte("\n---\n")))
	if err != nil {
		t.Fatal(err)
	}
	ours := load(t, base)
	names := func(m *Manifests) []string {
		var s []string
		for _, o := range m.Objects {
			s = append(s, o.Kind+"/"+o.Name)
		}
		slices.Sort(s)
		return s
	}
	if a, b := names(ours), names(theirs); !slices.Equal(a, b) {
		t.Errorf("kustomize's Go API renders %v, kubectl kustomize %v", a, b)
	}
}

// The create Job's containers run for real, in order and twice (the Job may
// run again), against a SQLite file instead of PostgreSQL, with the
// ConfigMap's files where the pod mounts them; then the workers' wait for
// the study ends at once.
func TestTheCreateJobIsIdempotentAndTheWorkersFindTheStudy(t *testing.T) {
	t.Parallel()
	m := load(t, base)
	dir := t.TempDir()
	storage := "sqlite:" + filepath.Join(dir, "floodtune.db")
	job := func(name string) corev1.PodSpec {
		for _, j := range m.Jobs {
			if j.Name == name {
				return j.Spec.Template.Spec
			}
		}
		t.Fatalf("no Job %s", name)
		return corev1.PodSpec{}
	}
	create := job("floodtune-create")
	for round := 1; round <= 2; round++ {
		for _, c := range append(append([]corev1.Container{}, create.InitContainers...), create.Containers...) {
			if out, err := runContainer(t, m, create, c, dir, storage); err != nil {
				t.Fatalf("round %d: container %s: %v\n%s", round, c.Name, err, out)
			}
		}
	}
	out, err := exec.Command(bin, "study", "show", "mnist-noise20", "--storage", storage).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("mnist-noise20")) {
		t.Fatalf("study show after the create Job: %v\n%s", err, out)
	}
	worker := job("floodtune-worker")
	for _, c := range worker.InitContainers {
		if out, err := runContainer(t, m, worker, c, dir, storage); err != nil {
			t.Fatalf("container %s: %v\n%s", c.Name, err, out)
		}
	}
}

// runContainer runs container c of pod spec here: floodtune is the one
// built, FLOODTUNE_STORAGE is storage, and each ConfigMap volume's files
// are written under dir and their mount paths rewritten in the arguments.
func runContainer(t *testing.T, m *Manifests, spec corev1.PodSpec, c corev1.Container, dir, storage string) ([]byte, error) {
	t.Helper()
	root := filepath.Join(dir, "root", c.Name)
	var rewrites []string
	for _, vm := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name != vm.Name || v.ConfigMap == nil {
				continue
			}
			cm := findConfigMap(m, "", v.ConfigMap.Name)
			if cm == nil {
				t.Fatalf("no ConfigMap %s", v.ConfigMap.Name)
			}
			files := map[string]string{}
			if len(v.ConfigMap.Items) == 0 {
				for k, d := range cm.Data {
					files[k] = d
				}
			}
			for _, it := range v.ConfigMap.Items {
				files[it.Path] = cm.Data[it.Key]
			}
			for name, data := range files {
				p := filepath.Join(root, vm.MountPath, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			rewrites = append(rewrites, vm.MountPath, filepath.Join(root, vm.MountPath))
		}
	}
	r := strings.NewReplacer(rewrites...)
	argv := append(append([]string{}, c.Command...), c.Args...)
	for i := range argv {
		argv[i] = r.Replace(argv[i])
	}
	if len(c.Command) == 0 || argv[0] == "/usr/local/bin/floodtune" || argv[0] == "floodtune" {
		if len(c.Command) > 0 {
			argv = argv[1:]
		}
		argv = append([]string{bin}, argv...)
	}
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = home
	cmd.Env = []string{"PATH=" + filepath.Dir(bin) + ":/usr/bin:/bin", "HOME=" + home, "FLOODTUNE_STORAGE=" + storage}
	return cmd.CombinedOutput()
}

// cobra parses the flags before it prints help, so --help appended to a
// command line catches an unknown flag; it does not catch an unknown
// subcommand or a surplus argument (the parent's help, exit status 0),
// which Resolve catches through the Usage line.
func TestHelpAloneMissesSubcommandsWhichResolveCatches(t *testing.T) {
	t.Parallel()
	status := func(args ...string) int {
		err := exec.Command(bin, append(args, "--help")...).Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if s := status("study", "optimize", "x", "--bogus"); s == 0 {
		t.Error("--help accepted an unknown flag")
	}
	if s := status("study", "optimize", "x", "--workers", "abc"); s == 0 {
		t.Error("--help accepted --workers abc")
	}
	if s := status("bogus"); s != 0 {
		t.Errorf("floodtune bogus --help exits %d: --help now catches unknown subcommands, and Resolve's Usage check is belt and braces", s)
	}

	tests := []struct {
		name string
		args []string
		want string // a part of the error, or "" for none
	}{
		{"a worker's command line is accepted", []string{"study", "optimize", "s", "--workers", "1", "--metrics-addr", "0.0.0.0:9464"}, ""},
		{"serve's command line is accepted", []string{"serve", "--addr", "0.0.0.0:8321", "--insecure", "--metrics-addr", "0.0.0.0:9464"}, ""},
		{"migrate up is accepted", []string{"migrate", "up"}, ""},
		{"a global flag before the subcommand is accepted", []string{"--storage", "sqlite:x.db", "study", "show", "s"}, ""},
		{"an unknown flag fails", []string{"study", "optimize", "s", "--bogus"}, "refuses"},
		{"a flag of another command fails", []string{"serve", "--workers", "1"}, "refuses"},
		{"a bool flag given a value fails", []string{"serve", "--insecure=maybe"}, "refuses"},
		{"an unknown subcommand of floodtune fails", []string{"bogus"}, `"bogus" is no subcommand`},
		{"an unknown subcommand of study fails", []string{"study", "bogus", "s"}, `"bogus" is no subcommand`},
		{"a group that runs nothing fails", []string{"token"}, "group of commands"},
		{"a surplus argument fails", []string{"study", "optimize", "s", "t"}, `"t" is no subcommand`},
		{"a missing argument fails", []string{"study", "optimize"}, "needs 1"},
		{"a migrate action it does not know fails", []string{"migrate", "upp"}, "not one of up, down, status"},
		{"study create without --spec fails", []string{"study", "create", "s"}, "needs --spec"},
		{"a misspelt subcommand fails", []string{"study", "optimise", "s"}, "no subcommand"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Resolve(bin, tt.args)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Resolve(%q): %v", tt.args, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Resolve(%q) = %v, want an error with %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestShellInvocationsFindsEveryFloodtuneCall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, script string
		want         []string
		wantErr      string
	}{
		{"or-list", "floodtune study show s >/dev/null 2>&1 || floodtune study create s --spec /etc/f/study.yaml",
			[]string{"study show s", "study create s --spec /etc/f/study.yaml"}, ""},
		{"loop and quotes", "until floodtune study show 's' ; do sleep 2; done\nexec floodtune \"study\" optimize s",
			[]string{"study show s", "study optimize s"}, ""},
		{"no floodtune", "echo floodtune study show s", nil, ""},
		{"a variable cannot be checked", "floodtune study show $NAME", nil, "computes"},
		{"a syntax error", "floodtune study show s ||", nil, "parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			invs, err := ShellInvocations(tt.script)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, inv := range invs {
				got = append(got, strings.Join(inv.Args, " "))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// A broken copy of the base fails the checks: each case changes one thing
// in a copy and names a part of the error it must cause.
func TestBrokenCopiesOfTheBaseFail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, old, new, want string
	}{
		{"an unknown field in a pod spec", "job-worker.yaml", "terminationGracePeriodSeconds: 60", "terminationGracePeriodSecond: 60", `unknown field "spec.template.spec.terminationGracePeriodSecond"`},
		{"an unknown field in a container", "serve.yaml", "readinessProbe:", "readynessProbe:", "unknown field"},
		{"an unknown field in the PodMonitor", "podmonitor.yaml", "interval: 15s", "intervall: 15s", "unknown field"},
		{"a field given twice", "serve.yaml", "  replicas: 2\n", "  replicas: 2\n  replicas: 3\n", "replicas"},
		{"a wrong flag", "job-worker.yaml", `"--workers", "1"`, `"--worker", "1"`, "unknown flag: --worker"},
		{"a wrong subcommand", "job-create.yaml", `args: ["migrate", "up"]`, `args: ["migrat", "up"]`, `"migrat" is no subcommand of "floodtune"`},
		{"a wrong flag in the shell script", "job-create.yaml", "--spec /etc/floodtune/study.yaml", "--specs /etc/floodtune/study.yaml", "unknown flag: --specs"},
		{"a wrong subcommand in the shell script", "job-create.yaml", "floodtune study show mnist-noise20", "floodtune study shw mnist-noise20", "no subcommand"},
		{"a spec file that is not mounted", "job-create.yaml", "--spec /etc/floodtune/study.yaml", "--spec /etc/floodtune/spec.yaml", "has no file spec.yaml"},
		{"two workers in a pod", "job-worker.yaml", `"--workers", "1"`, `"--workers", "2"`, "want --workers 1"},
		{"a worker on two CPUs", "job-worker.yaml", `limits: {cpu: "1", memory: 1Gi}`, `limits: {cpu: "2", memory: 1Gi}`, "CPU request and limit must be 1"},
		{"a worker killed before it gives its trials back", "job-worker.yaml", "terminationGracePeriodSeconds: 60", "terminationGracePeriodSeconds: 5", "terminationGracePeriodSeconds ≥ 30"},
		{"a metrics port that is not --metrics-addr's", "job-worker.yaml", `"0.0.0.0:9464"]`, `"0.0.0.0:9465"]`, "containerPort metrics is 9464 but --metrics-addr is 0.0.0.0:9465"},
		{"metrics on loopback", "serve.yaml", `"--metrics-addr", "0.0.0.0:9464"`, `"--metrics-addr", "127.0.0.1:9464"`, "loopback only"},
		{"a probe on a port that does not exist", "serve.yaml", "httpGet: {path: /readyz, port: http}", "httpGet: {path: /readyz, port: api}", "port api is not the name of a containerPort"},
		{"a probe on the metrics port", "serve.yaml", "httpGet: {path: /healthz, port: http}", "httpGet: {path: /healthz, port: metrics}", "on the API's port"},
		{"the API on another port than its containerPort", "serve.yaml", `"--addr", "0.0.0.0:8321"`, `"--addr", "0.0.0.0:8322"`, "containerPort http is 8321 but --addr is 0.0.0.0:8322"},
		{"a PodMonitor port that does not exist", "podmonitor.yaml", "- port: metrics", "- port: metric", "no containerPort of that name"},
		{"a PodMonitor that selects nothing", "podmonitor.yaml", "values: [worker, serve]", "values: [workers]", "selects no pod"},
		{"a Service targetPort that does not exist", "serve.yaml", "targetPort: http", "targetPort: api", "targetPort api is no containerPort"},
		{"a Secret key that does not exist", "serve.yaml", "key: FLOODTUNE_STORAGE", "key: STORAGE", `has no key "STORAGE"`},
		{"a Secret that does not exist", "job-worker.yaml", "name: floodtune-storage\n", "name: floodtune-storag\n", `no Secret "floodtune-storag"`},
		{"a ConfigMap that does not exist", "job-create.yaml", "name: floodtune-study", "name: floodtune-studies", `no ConfigMap "floodtune-studies"`},
		{"a ConfigMap key that does not exist", "job-create.yaml", "{key: study.yaml, path: study.yaml}", "{key: spec.yaml, path: study.yaml}", `has no key "spec.yaml"`},
		{"a writable root filesystem", "serve.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem must be true"},
		{"a pod that may run as root", "job-create.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot must be true"},
		{"privilege escalation", "job-worker.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "allowPrivilegeEscalation must be false"},
		{"capabilities kept", "serve.yaml", `drop: ["ALL"]`, `drop: ["NET_RAW"]`, "drop ALL"},
		{"no seccomp profile", "serve.yaml", "type: RuntimeDefault", "type: Unconfined", "seccompProfile must be RuntimeDefault"},
		{"no writable home", "job-worker.yaml", "- {name: home, mountPath: /var/lib/floodtune}", "- {name: home, mountPath: /home/floodtune}", "/var/lib/floodtune needs a writable emptyDir"},
		{"a container without resources", "job-create.yaml", "limits: {cpu: 500m, memory: 256Mi}", "limits: {cpu: 500m}", "memory needs a request and a limit"},
		{"GOMEMLIMIT above the limit", "job-worker.yaml", "value: 900MiB", "value: 2GiB", "must be below the memory limit"},
		{"a command that is not floodtune", "job-worker.yaml", `command: ["/bin/sh", "-c"]`, `command: ["/bin/bash", "-c"]`, "neither floodtune nor /bin/sh -c"},
		{"a storage URL that is not PostgreSQL's", "storage.env", "FLOODTUNE_STORAGE=postgres://", "FLOODTUNE_STORAGE=mysql://", "not a postgres://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := copyBase(t)
			p := filepath.Join(dir, tt.file)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(tt.old)) {
				t.Fatalf("%s has no %q: update the case", tt.file, tt.old)
			}
			b = bytes.Replace(b, []byte(tt.old), []byte(tt.new), 1)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			var msgs []string
			if m, err := Load(dir); err != nil {
				msgs = append(msgs, err.Error())
			} else {
				for _, err := range Check(m, bin) {
					msgs = append(msgs, err.Error())
				}
			}
			if len(msgs) == 0 {
				t.Fatalf("the broken copy passed every check, want an error with %q", tt.want)
			}
			all := strings.Join(msgs, "\n")
			t.Logf("the broken copy fails with:\n%s", all)
			if !strings.Contains(all, tt.want) {
				t.Errorf("errors:\n%s\nwant one with %q", all, tt.want)
			}
		})
	}
}

// copyBase copies the base's files (not this module) into a new directory.
func copyBase(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(base, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The rendered YAML round-trips: what kustomize renders is what the types
// hold, so no field was silently dropped by the decoding.
func TestDecodingDropsNoField(t *testing.T) {
	t.Parallel()
	m := load(t, base)
	for _, o := range m.Objects {
		var raw, typed any
		if err := yaml.Unmarshal(o.YAML, &raw); err != nil {
			t.Fatal(err)
		}
		b, err := yaml.Marshal(o.Value)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &typed); err != nil {
			t.Fatal(err)
		}
		if missing := missingPaths(raw, typed, o.Kind); len(missing) > 0 {
			t.Errorf("%s %s: fields lost in decoding: %v", o.Kind, o.Name, missing)
		}
	}
}

// missingPaths lists the map keys of a that b lacks, recursively.
func missingPaths(a, b any, path string) []string {
	var out []string
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok {
			return []string{path}
		}
		for k, v := range a {
			bv, ok := bm[k]
			if !ok {
				out = append(out, path+"."+k)
				continue
			}
			out = append(out, missingPaths(v, bv, path+"."+k)...)
		}
	case []any:
		bs, ok := b.([]any)
		if !ok || len(bs) != len(a) {
			return []string{path}
		}
		for i := range a {
			out = append(out, missingPaths(a[i], bs[i], fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}
