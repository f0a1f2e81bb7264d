// Package kubetest checks floodtune's Kubernetes base (deploy/kubernetes)
// without a cluster: it renders the base with kustomize's Go API, decodes
// every object strictly into its k8s.io/api type (an unknown or misspelt
// field fails), and checks the objects against each other and every
// floodtune command line against the real command tree of a floodtune
// binary.
//
//	m, err := kubetest.Load("..")        // render and decode strictly
//	errs := kubetest.Check(m, "/tmp/floodtune")
//
// It is a module of its own, so that the k8s.io and kustomize dependencies
// stay out of floodtune's go.mod.
package kubetest

import (
	"bytes"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// PodMonitor is the part of the Prometheus Operator's PodMonitor
// (monitoring.coreos.com/v1) that the base uses. k8s.io/api has no type for
// this custom resource; decoding into this one strictly fails on any field
// not listed here, so a field of the CRD that the base starts to use must be
// added here first (with the CRD's own spelling).
type PodMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              PodMonitorSpec `json:"spec"`
}

// PodMonitorSpec is the spec of a PodMonitor.
type PodMonitorSpec struct {
	JobLabel            string               `json:"jobLabel,omitempty"`
	PodTargetLabels     []string             `json:"podTargetLabels,omitempty"`
	Selector            metav1.LabelSelector `json:"selector"`
	NamespaceSelector   *NamespaceSelector   `json:"namespaceSelector,omitempty"`
	PodMetricsEndpoints []PodMetricsEndpoint `json:"podMetricsEndpoints"`
	SampleLimit         *uint64              `json:"sampleLimit,omitempty"`
	TargetLimit         *uint64              `json:"targetLimit,omitempty"`
}

// NamespaceSelector says in which namespaces a PodMonitor looks for pods
// (by default its own).
type NamespaceSelector struct {
	Any        bool     `json:"any,omitempty"`
	MatchNames []string `json:"matchNames,omitempty"`
}

// PodMetricsEndpoint is one scraped port of the selected pods.
type PodMetricsEndpoint struct {
	Port          string `json:"port,omitempty"`
	PortNumber    *int32 `json:"portNumber,omitempty"`
	Path          string `json:"path,omitempty"`
	Scheme        string `json:"scheme,omitempty"`
	Interval      string `json:"interval,omitempty"`
	ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
	HonorLabels   bool   `json:"honorLabels,omitempty"`
}

// Object is one rendered object: its YAML as kustomize rendered it and its
// strictly decoded value (*corev1.Secret, *appsv1.Deployment, *PodMonitor,
// ...).
type Object struct {
	Kind, Name, Namespace string
	YAML                  []byte
	Value                 any
}

// Manifests are the decoded objects of a rendered base, also indexed by kind.
type Manifests struct {
	Objects     []Object
	Secrets     []*corev1.Secret
	ConfigMaps  []*corev1.ConfigMap
	Services    []*corev1.Service
	Deployments []*appsv1.Deployment
	Jobs        []*batchv1.Job
	PodMonitors []*PodMonitor
}

// Render builds the kustomization in dir with kustomize's Go API (what
// kubectl apply -k does) and returns the YAML of each object.
func Render(dir string) ([][]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", dir, err)
	}
	var docs [][]byte
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("render %s: %s %s: %w", dir, r.GetKind(), r.GetName(), err)
		}
		docs = append(docs, y)
	}
	return docs, nil
}

// Load renders the base in dir and decodes it strictly.
func Load(dir string) (*Manifests, error) {
	docs, err := Render(dir)
	if err != nil {
		return nil, err
	}
	return Decode(docs)
}

// kinds are the objects that a base may hold, by apiVersion and kind: an
// object of any other kind is an error, since nothing would check it.
var kinds = map[string]func() any{
	"v1/Secret":                           func() any { return new(corev1.Secret) },
	"v1/ConfigMap":                        func() any { return new(corev1.ConfigMap) },
	"v1/Service":                          func() any { return new(corev1.Service) },
	"apps/v1/Deployment":                  func() any { return new(appsv1.Deployment) },
	"batch/v1/Job":                        func() any { return new(batchv1.Job) },
	"monitoring.coreos.com/v1/PodMonitor": func() any { return new(PodMonitor) },
}

// Decode decodes each YAML document strictly (sigs.k8s.io/yaml's
// UnmarshalStrict: an unknown field, a duplicate field or a value of the
// wrong type fails) into the type of its apiVersion and kind.
func Decode(docs [][]byte) (*Manifests, error) {
	m := &Manifests{}
	for _, doc := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("decode %q: %w", firstLine(doc), err)
		}
		mk, ok := kinds[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			return nil, fmt.Errorf("decode: %s %s is not a kind this check knows: add it to kubetest's kinds", tm.APIVersion, tm.Kind)
		}
		v := mk()
		// First as the API server's strict field validation decodes (its
		// errors name the field's path), then with sigs.k8s.io/yaml's
		// UnmarshalStrict: an unknown field, a field given twice or a
		// value of the wrong type fails.
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", tm.Kind, err)
		}
		strictErrs, err := kjson.UnmarshalStrict(j, mk())
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", tm.Kind, err)
		}
		if len(strictErrs) > 0 {
			return nil, fmt.Errorf("decode %s strictly: %w", tm.Kind, errors.Join(strictErrs...))
		}
		if err := yaml.UnmarshalStrict(doc, v); err != nil {
			return nil, fmt.Errorf("decode %s strictly: %w", tm.Kind, err)
		}
		meta, err := objectMeta(v)
		if err != nil {
			return nil, err
		}
		if errs := validation.IsDNS1123Subdomain(meta.Name); len(errs) > 0 {
			return nil, fmt.Errorf("%s %q: invalid name: %v", tm.Kind, meta.Name, errs)
		}
		m.Objects = append(m.Objects, Object{Kind: tm.Kind, Name: meta.Name, Namespace: meta.Namespace, YAML: doc, Value: v})
		switch o := v.(type) {
		case *corev1.Secret:
			m.Secrets = append(m.Secrets, o)
		case *corev1.ConfigMap:
			m.ConfigMaps = append(m.ConfigMaps, o)
		case *corev1.Service:
			m.Services = append(m.Services, o)
		case *appsv1.Deployment:
			m.Deployments = append(m.Deployments, o)
		case *batchv1.Job:
			m.Jobs = append(m.Jobs, o)
		case *PodMonitor:
			m.PodMonitors = append(m.PodMonitors, o)
		}
	}
	return m, nil
}

func objectMeta(v any) (*metav1.ObjectMeta, error) {
	switch o := v.(type) {
	case *corev1.Secret:
		return &o.ObjectMeta, nil
	case *corev1.ConfigMap:
		return &o.ObjectMeta, nil
	case *corev1.Service:
		return &o.ObjectMeta, nil
	case *appsv1.Deployment:
		return &o.ObjectMeta, nil
	case *batchv1.Job:
		return &o.ObjectMeta, nil
	case *PodMonitor:
		return &o.ObjectMeta, nil
	}
	return nil, fmt.Errorf("no metadata in %T", v)
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
