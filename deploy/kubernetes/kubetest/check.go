package kubetest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Pod is a pod template of the base, with the object that owns it.
type Pod struct {
	Owner     string // "Job floodtune-worker"
	Namespace string
	Labels    map[string]string
	Spec      corev1.PodSpec
}

// Pods returns the pod templates of the Deployments and Jobs.
func (m *Manifests) Pods() []Pod {
	var pods []Pod
	for _, d := range m.Deployments {
		pods = append(pods, Pod{"Deployment " + d.Name, d.Namespace, d.Spec.Template.Labels, d.Spec.Template.Spec})
	}
	for _, j := range m.Jobs {
		pods = append(pods, Pod{"Job " + j.Name, j.Namespace, j.Spec.Template.Labels, j.Spec.Template.Spec})
	}
	return pods
}

// Where floodtune writes: the image's home and working directory, and the
// temporary directory. With readOnlyRootFilesystem both must be writable
// volumes.
const (
	homeDir = "/var/lib/floodtune"
	tmpDir  = "/tmp"
)

// Check checks the decoded base against itself and against the floodtune
// binary bin, and returns every problem found.
func Check(m *Manifests, bin string) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(m.Pods()) == 0 {
		add(errors.New("the base runs no pod"))
	}
	for _, d := range m.Deployments {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		switch {
		case err != nil:
			add(fmt.Errorf("Deployment %s: selector: %w", d.Name, err))
		case sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)):
			add(fmt.Errorf("Deployment %s: its selector does not select its pod template's labels", d.Name))
		}
	}
	for _, j := range m.Jobs {
		if rp := j.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyNever && rp != corev1.RestartPolicyOnFailure {
			add(fmt.Errorf("Job %s: restartPolicy must be Never or OnFailure, got %q", j.Name, rp))
		}
	}
	for _, p := range m.Pods() {
		for _, err := range checkPod(m, p, bin) {
			add(fmt.Errorf("%s: %w", p.Owner, err))
		}
	}
	for _, s := range m.Services {
		for _, err := range checkService(m, s) {
			add(fmt.Errorf("Service %s: %w", s.Name, err))
		}
	}
	for _, pm := range m.PodMonitors {
		for _, err := range checkPodMonitor(m, pm) {
			add(fmt.Errorf("PodMonitor %s: %w", pm.Name, err))
		}
	}
	for _, s := range m.Secrets {
		if v, ok := secretValue(s, "FLOODTUNE_STORAGE"); ok {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
				add(fmt.Errorf("Secret %s: FLOODTUNE_STORAGE is not a postgres://USER:PASSWORD@HOST/DB URL", s.Name))
			}
		}
	}
	return errs
}

// container is a container of a pod with what it runs.
type container struct {
	c        corev1.Container
	init     bool
	commands []*Command // resolved floodtune invocations
	direct   *Command   // the one command when floodtune is the entrypoint
}

func checkPod(m *Manifests, p Pod, bin string) []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	spec := p.Spec

	// Security: non-root, no privilege, read-only root.
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		add("pod securityContext.runAsNonRoot must be true")
	}
	// The image's USER is a name (floodtune): the kubelet can only check
	// runAsNonRoot against a numeric user, so the pod names one.
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser <= 0 {
		add("pod securityContext.runAsUser must be a numeric non-root user (the image's USER is a name)")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		add("pod securityContext.seccompProfile must be RuntimeDefault")
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		add("pod uses the host's network, PID or IPC namespace")
	}

	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		if _, dup := volumes[v.Name]; dup {
			add("volume %q twice", v.Name)
		}
		volumes[v.Name] = v
		errs = append(errs, checkVolumeRefs(m, p.Namespace, v)...)
	}

	var cs []container
	for _, c := range spec.InitContainers {
		cs = append(cs, container{c: c, init: true})
	}
	for _, c := range spec.Containers {
		cs = append(cs, container{c: c})
	}
	names := map[string]bool{}
	for i := range cs {
		c := &cs[i]
		if names[c.c.Name] {
			add("container %q twice", c.c.Name)
		}
		names[c.c.Name] = true
		for _, err := range checkContainer(m, p, c, volumes, bin) {
			add("container %s: %w", c.c.Name, err)
		}
	}

	// Workers: one trial per pod on one CPU, and time to give the trials
	// back on SIGTERM.
	for _, c := range cs {
		for _, cmd := range c.commands {
			if !cmd.Is("study", "optimize") || c.init {
				continue
			}
			if w := cmd.Flags["workers"]; w != "1" {
				add("container %s: a worker pod runs one worker: want --workers 1, got %q", c.c.Name, w)
			}
			one := resource.MustParse("1")
			lim, req := c.c.Resources.Limits[corev1.ResourceCPU], c.c.Resources.Requests[corev1.ResourceCPU]
			if lim.Cmp(one) != 0 || req.Cmp(one) != 0 {
				add("container %s: a worker's CPU request and limit must be 1 (one trial on one BLAS thread), got %s and %s", c.c.Name, req.String(), lim.String())
			}
			if mem := c.c.Resources.Limits[corev1.ResourceMemory]; mem.Cmp(resource.MustParse("512Mi")) < 0 {
				add("container %s: a worker's memory limit %s is too small for the MNIST MLP (want ≥ 512Mi)", c.c.Name, mem.String())
			}
			// A worker's storage calls retry for up to about 15 s while it
			// gives its trials back.
			if g := spec.TerminationGracePeriodSeconds; g == nil || *g < 30 {
				add("a worker pod needs terminationGracePeriodSeconds ≥ 30 to give its trials back (its storage calls retry for up to ~15 s)")
			}
		}
	}
	return errs
}

func checkContainer(m *Manifests, p Pod, c *container, volumes map[string]corev1.Volume, bin string) []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	cc := c.c

	if !imageIsFloodtune(cc.Image) {
		add("image %q is not floodtune's: this check knows only floodtune's command tree", cc.Image)
		return errs
	}

	// What it runs, against the real command tree.
	invs, err := Invocations(cc)
	if err != nil {
		return append(errs, err)
	}
	for _, inv := range invs {
		cmd, err := Resolve(bin, inv.Args)
		if err != nil {
			add("%w", err)
			continue
		}
		c.commands = append(c.commands, cmd)
		if !inv.Shell {
			c.direct = cmd
		}
	}
	if len(c.commands) != len(invs) {
		return errs
	}

	// Security.
	sc := cc.SecurityContext
	switch {
	case sc == nil:
		add("no securityContext")
	default:
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			add("readOnlyRootFilesystem must be true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			add("allowPrivilegeEscalation must be false")
		}
		if sc.Privileged != nil && *sc.Privileged {
			add("privileged")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			add("capabilities must drop ALL and add none")
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			add("runAsUser 0")
		}
		if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
			add("runAsNonRoot false")
		}
	}

	// Resources: requests and limits of CPU and memory, requests ≤ limits.
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := cc.Resources.Requests[r]
		lim, hasLim := cc.Resources.Limits[r]
		if !hasReq || !hasLim {
			add("resources: %s needs a request and a limit", r)
			continue
		}
		if req.Cmp(lim) > 0 || req.Sign() <= 0 {
			add("resources: %s request %s must be > 0 and ≤ its limit %s", r, req.String(), lim.String())
		}
	}

	// Environment: references, and GOMEMLIMIT under the memory limit.
	env := map[string]string{}
	for _, e := range cc.Env {
		env[e.Name] = e.Value
		if e.ValueFrom == nil {
			continue
		}
		if ref := e.ValueFrom.SecretKeyRef; ref != nil {
			if err := secretHasKey(m, p.Namespace, ref.Name, ref.Key); err != nil {
				add("env %s: %w", e.Name, err)
			}
		}
		if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
			if err := configMapHasKey(m, p.Namespace, ref.Name, ref.Key); err != nil {
				add("env %s: %w", e.Name, err)
			}
		}
	}
	for _, ef := range cc.EnvFrom {
		if ef.SecretRef != nil && findSecret(m, p.Namespace, ef.SecretRef.Name) == nil {
			add("envFrom: no Secret %q in the rendered base", ef.SecretRef.Name)
		}
		if ef.ConfigMapRef != nil && findConfigMap(m, p.Namespace, ef.ConfigMapRef.Name) == nil {
			add("envFrom: no ConfigMap %q in the rendered base", ef.ConfigMapRef.Name)
		}
	}
	if v, ok := env["GOMEMLIMIT"]; ok {
		if n, err := goMemLimit(v); err != nil {
			add("GOMEMLIMIT %q: %w", v, err)
		} else if lim, ok := cc.Resources.Limits[corev1.ResourceMemory]; ok && n >= lim.Value() {
			add("GOMEMLIMIT %s must be below the memory limit %s", v, lim.String())
		}
	}
	if !c.hasStorage(cc) {
		add("no FLOODTUNE_STORAGE (env or envFrom): floodtune would use its default SQLite file")
	}

	// Mounts: existing volumes, and writable home and /tmp.
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range cc.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			add("volumeMount %s: no volume of that name", vm.Name)
			continue
		}
		mounts[vm.MountPath] = vm
		if (v.Secret != nil || v.ConfigMap != nil) && !vm.ReadOnly {
			add("volumeMount %s: mount a Secret or ConfigMap readOnly", vm.Name)
		}
	}
	home := homeDir
	if h, ok := env["HOME"]; ok {
		home = h
	}
	for _, dir := range slices.Compact([]string{homeDir, home, tmpDir}) {
		vm, ok := mounts[dir]
		if !ok || vm.ReadOnly || volumes[vm.Name].EmptyDir == nil {
			add("the root filesystem is read-only: %s needs a writable emptyDir mount", dir)
		}
	}
	// Files named on the command line come from a mounted ConfigMap or
	// Secret that has them.
	for _, cmd := range c.commands {
		for _, f := range []string{"spec", "tls-cert", "tls-key", "token-file", "ca-file"} {
			if path, ok := cmd.Flags[f]; ok && path != "-" {
				if err := fileMounted(m, p.Namespace, path, cc.VolumeMounts, volumes); err != nil {
					add("%s --%s %s: %w", cmd, f, path, err)
				}
			}
		}
	}

	// Ports: each named port is the listener of a flag, on an address the
	// kubelet and Prometheus can reach.
	ports := map[string]corev1.ContainerPort{}
	for _, cp := range cc.Ports {
		if cp.Name == "" {
			add("containerPort %d has no name: probes, Services and PodMonitors refer to ports by name", cp.ContainerPort)
			continue
		}
		if es := validation.IsValidPortName(cp.Name); len(es) > 0 {
			add("containerPort name %q: %s", cp.Name, strings.Join(es, "; "))
		}
		if _, dup := ports[cp.Name]; dup {
			add("containerPort %q twice", cp.Name)
		}
		ports[cp.Name] = cp
		flag, known := portFlags[cp.Name]
		if !known {
			add("containerPort %q: no floodtune flag listens on a port of that name (want one of metrics, http, https)", cp.Name)
			continue
		}
		if c.direct == nil {
			add("containerPort %q: only a container whose entrypoint is floodtune may expose a port", cp.Name)
			continue
		}
		addr, given := c.direct.Flags[flag]
		if !given {
			add("containerPort %s %d: %s has no --%s, so it listens on loopback (its default) or not at all", cp.Name, cp.ContainerPort, c.direct, flag)
			continue
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			add("--%s %q: %w", flag, addr, err)
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || int32(n) != cp.ContainerPort {
			add("containerPort %s is %d but --%s is %s", cp.Name, cp.ContainerPort, flag, addr)
		}
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			add("containerPort %s: --%s %s listens on loopback only: nothing outside the pod reaches it", cp.Name, flag, addr)
		}
		if cp.Protocol != "" && cp.Protocol != corev1.ProtocolTCP {
			add("containerPort %s: protocol %s, floodtune serves TCP", cp.Name, cp.Protocol)
		}
	}

	// Probes: on a named port of this container; the API's /healthz and
	// /readyz on serve's --addr, in its scheme.
	probes := []struct {
		kind string
		p    *corev1.Probe
	}{{"livenessProbe", cc.LivenessProbe}, {"readinessProbe", cc.ReadinessProbe}, {"startupProbe", cc.StartupProbe}}
	for _, pr := range probes {
		if pr.p == nil {
			continue
		}
		var port intstr.IntOrString
		switch h := pr.p.ProbeHandler; {
		case h.HTTPGet != nil:
			port = h.HTTPGet.Port
		case h.TCPSocket != nil:
			port = h.TCPSocket.Port
		default:
			add("%s: floodtune is probed over HTTP or TCP", pr.kind)
			continue
		}
		cp, ok := ports[port.StrVal]
		if port.Type != intstr.String || !ok {
			add("%s: port %s is not the name of a containerPort of %s", pr.kind, port.String(), cc.Name)
			continue
		}
		if g := pr.p.HTTPGet; g != nil && (g.Path == "/healthz" || g.Path == "/readyz") {
			if c.direct == nil || !c.direct.Is("serve") {
				add("%s: %s is served by floodtune serve only", pr.kind, g.Path)
				continue
			}
			if portFlags[cp.Name] != "addr" {
				add("%s: %s is on the API's port (--addr), not on %s", pr.kind, g.Path, cp.Name)
			}
			scheme := corev1.URISchemeHTTP
			if _, tls := c.direct.Flags["tls-cert"]; tls {
				scheme = corev1.URISchemeHTTPS
			}
			if got := g.Scheme; got != scheme && !(got == "" && scheme == corev1.URISchemeHTTP) {
				add("%s: scheme %s, but serve speaks %s", pr.kind, got, scheme)
			}
		}
	}
	if c.direct != nil && c.direct.Is("serve") && !c.init {
		if g := probeGet(cc.LivenessProbe); g == nil || g.Path != "/healthz" {
			add("serve needs a livenessProbe on /healthz")
		}
		if g := probeGet(cc.ReadinessProbe); g == nil || g.Path != "/readyz" {
			add("serve needs a readinessProbe on /readyz")
		}
		if _, ok := ports["metrics"]; !ok && c.direct.Flags["metrics-addr"] != "" {
			add("serve's metrics (--metrics-addr) need a containerPort named metrics")
		}
	}
	if c.direct != nil && c.direct.Is("study", "optimize") && !c.init {
		if _, ok := ports["metrics"]; !ok {
			add("a worker's metrics need a containerPort named metrics")
		}
	}
	return errs
}

// portFlags maps a containerPort's name to the floodtune flag whose
// address it is.
var portFlags = map[string]string{"metrics": "metrics-addr", "http": "addr", "https": "addr"}

func (c *container) hasStorage(cc corev1.Container) bool {
	for _, e := range cc.Env {
		if e.Name == "FLOODTUNE_STORAGE" {
			return true
		}
	}
	for _, cmd := range c.commands {
		if _, ok := cmd.Flags["storage"]; ok {
			return true
		}
	}
	return len(cc.EnvFrom) > 0
}

func probeGet(p *corev1.Probe) *corev1.HTTPGetAction {
	if p == nil {
		return nil
	}
	return p.HTTPGet
}

// goMemLimit parses GOMEMLIMIT as the Go runtime does: a byte count with
// an optional B, KiB, MiB, GiB or TiB suffix.
func goMemLimit(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a byte count such as 900MiB")
	}
	return n * mult, nil
}

func checkVolumeRefs(m *Manifests, ns string, v corev1.Volume) []error {
	var errs []error
	if s := v.Secret; s != nil {
		if findSecret(m, ns, s.SecretName) == nil {
			return append(errs, fmt.Errorf("volume %s: no Secret %q in the rendered base (a generator's name gets a hash suffix: refer to it by its name in the kustomization)", v.Name, s.SecretName))
		}
		for _, it := range s.Items {
			if err := secretHasKey(m, ns, s.SecretName, it.Key); err != nil {
				errs = append(errs, fmt.Errorf("volume %s: %w", v.Name, err))
			}
		}
	}
	if c := v.ConfigMap; c != nil {
		if findConfigMap(m, ns, c.Name) == nil {
			return append(errs, fmt.Errorf("volume %s: no ConfigMap %q in the rendered base (a generator's name gets a hash suffix: refer to it by its name in the kustomization)", v.Name, c.Name))
		}
		for _, it := range c.Items {
			if err := configMapHasKey(m, ns, c.Name, it.Key); err != nil {
				errs = append(errs, fmt.Errorf("volume %s: %w", v.Name, err))
			}
		}
	}
	if pr := v.Projected; pr != nil {
		for _, src := range pr.Sources {
			if s := src.Secret; s != nil {
				for _, it := range s.Items {
					if err := secretHasKey(m, ns, s.Name, it.Key); err != nil {
						errs = append(errs, fmt.Errorf("volume %s: %w", v.Name, err))
					}
				}
			}
			if c := src.ConfigMap; c != nil {
				for _, it := range c.Items {
					if err := configMapHasKey(m, ns, c.Name, it.Key); err != nil {
						errs = append(errs, fmt.Errorf("volume %s: %w", v.Name, err))
					}
				}
			}
		}
	}
	return errs
}

// fileMounted checks that path is a file of a mounted ConfigMap or Secret.
func fileMounted(m *Manifests, ns, path string, mounts []corev1.VolumeMount, volumes map[string]corev1.Volume) error {
	for _, vm := range mounts {
		dir := strings.TrimSuffix(vm.MountPath, "/") + "/"
		if !strings.HasPrefix(path, dir) {
			continue
		}
		rel := strings.TrimPrefix(path, dir)
		v := volumes[vm.Name]
		keys := volumeFiles(m, ns, v)
		if keys == nil {
			return fmt.Errorf("%s is on volume %s, which is not a ConfigMap or Secret of the base", path, vm.Name)
		}
		if !slices.Contains(keys, rel) {
			return fmt.Errorf("volume %s mounted at %s has no file %s (it has %s)", vm.Name, vm.MountPath, rel, strings.Join(keys, ", "))
		}
		return nil
	}
	return fmt.Errorf("no volume is mounted there")
}

// volumeFiles returns the file names of a ConfigMap or Secret volume, or
// nil for any other volume.
func volumeFiles(m *Manifests, ns string, v corev1.Volume) []string {
	var items []corev1.KeyToPath
	var all []string
	switch {
	case v.ConfigMap != nil:
		items = v.ConfigMap.Items
		if cm := findConfigMap(m, ns, v.ConfigMap.Name); cm != nil {
			for k := range cm.Data {
				all = append(all, k)
			}
			for k := range cm.BinaryData {
				all = append(all, k)
			}
		}
	case v.Secret != nil:
		items = v.Secret.Items
		if s := findSecret(m, ns, v.Secret.SecretName); s != nil {
			for k := range s.Data {
				all = append(all, k)
			}
			for k := range s.StringData {
				all = append(all, k)
			}
		}
	default:
		return nil
	}
	if len(items) == 0 {
		slices.Sort(all)
		return append([]string{}, all...)
	}
	var files []string
	for _, it := range items {
		files = append(files, it.Path)
	}
	return files
}

func checkService(m *Manifests, s *corev1.Service) []error {
	var errs []error
	pods := selectPods(m, s.Namespace, labels.SelectorFromSet(s.Spec.Selector))
	if len(s.Spec.Selector) == 0 || len(pods) == 0 {
		return append(errs, errors.New("its selector selects no pod of the base"))
	}
	for _, sp := range s.Spec.Ports {
		tp := sp.TargetPort
		if tp.Type != intstr.String || tp.StrVal == "" {
			errs = append(errs, fmt.Errorf("port %s: targetPort %s must name a containerPort", sp.Name, tp.String()))
			continue
		}
		for _, p := range pods {
			if !podHasPort(p, tp.StrVal) {
				errs = append(errs, fmt.Errorf("port %s: targetPort %s is no containerPort of %s", sp.Name, tp.StrVal, p.Owner))
			}
		}
	}
	return errs
}

// promDuration is a Prometheus duration (as the operator's CRD checks it).
var promDuration = regexp.MustCompile(`^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`)

func checkPodMonitor(m *Manifests, pm *PodMonitor) []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if ns := pm.Spec.NamespaceSelector; ns != nil && (ns.Any || len(ns.MatchNames) > 0) {
		add("namespaceSelector: the base's pods are in the PodMonitor's own namespace")
	}
	sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
	if err != nil {
		return append(errs, fmt.Errorf("selector: %w", err))
	}
	pods := selectPods(m, pm.Namespace, sel)
	if sel.Empty() || len(pods) == 0 {
		return append(errs, errors.New("its selector selects no pod of the base"))
	}
	if len(pm.Spec.PodMetricsEndpoints) == 0 {
		add("no podMetricsEndpoints")
	}
	for _, ep := range pm.Spec.PodMetricsEndpoints {
		if ep.Port == "" || ep.PortNumber != nil {
			add("podMetricsEndpoints: scrape a containerPort by its name (port)")
			continue
		}
		for _, p := range pods {
			if !podHasPort(p, ep.Port) {
				add("podMetricsEndpoints port %s: no containerPort of that name in %s", ep.Port, p.Owner)
			}
		}
		if ep.Path != "" && ep.Path != "/metrics" {
			add("podMetricsEndpoints path %q: floodtune serves its metrics on /metrics", ep.Path)
		}
		if ep.Scheme != "" && ep.Scheme != "http" {
			add("podMetricsEndpoints scheme %q: --metrics-addr serves plain HTTP", ep.Scheme)
		}
		for _, d := range []string{ep.Interval, ep.ScrapeTimeout} {
			if d != "" && !promDuration.MatchString(d) {
				add("podMetricsEndpoints: %q is not a Prometheus duration", d)
			}
		}
	}
	if jl := pm.Spec.JobLabel; jl != "" {
		for _, p := range pods {
			if p.Labels[jl] == "" {
				add("jobLabel %s: %s has no such label", jl, p.Owner)
			}
		}
	}
	return errs
}

func selectPods(m *Manifests, ns string, sel labels.Selector) []Pod {
	var out []Pod
	for _, p := range m.Pods() {
		if p.Namespace == ns && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out
}

func podHasPort(p Pod, name string) bool {
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == name {
				return true
			}
		}
	}
	return false
}

func findSecret(m *Manifests, ns, name string) *corev1.Secret {
	for _, s := range m.Secrets {
		if s.Namespace == ns && s.Name == name {
			return s
		}
	}
	return nil
}

func findConfigMap(m *Manifests, ns, name string) *corev1.ConfigMap {
	for _, c := range m.ConfigMaps {
		if c.Namespace == ns && c.Name == name {
			return c
		}
	}
	return nil
}

func secretHasKey(m *Manifests, ns, name, key string) error {
	s := findSecret(m, ns, name)
	if s == nil {
		return fmt.Errorf("no Secret %q in the rendered base (a generator's name gets a hash suffix: refer to it by its name in the kustomization)", name)
	}
	if _, ok := secretValue(s, key); !ok {
		return fmt.Errorf("Secret %s has no key %q", name, key)
	}
	return nil
}

func configMapHasKey(m *Manifests, ns, name, key string) error {
	c := findConfigMap(m, ns, name)
	if c == nil {
		return fmt.Errorf("no ConfigMap %q in the rendered base (a generator's name gets a hash suffix: refer to it by its name in the kustomization)", name)
	}
	_, ok := c.Data[key]
	if _, bin := c.BinaryData[key]; !ok && !bin {
		return fmt.Errorf("ConfigMap %s has no key %q", name, key)
	}
	return nil
}

// secretValue returns a Secret's value of key, from data or stringData.
func secretValue(s *corev1.Secret, key string) (string, bool) {
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	if v, ok := s.Data[key]; ok {
		return string(v), true
	}
	return "", false
}
