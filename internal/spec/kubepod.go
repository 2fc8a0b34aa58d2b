package spec

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// KubeResources are a pod's requests and limits, by resource name.
type KubeResources struct {
	Requests KubeQuantities `yaml:"requests,omitempty" json:"requests,omitempty"`
	Limits   KubeQuantities `yaml:"limits,omitempty" json:"limits,omitempty"`
}

// KubeQuantities are the amounts of CPU and memory, as Kubernetes writes
// them: cpu "500m" or "2", memory "128Mi" or "1G".
type KubeQuantities struct {
	CPU    string `yaml:"cpu,omitempty" json:"cpu,omitempty"`
	Memory string `yaml:"memory,omitempty" json:"memory,omitempty"`
}

// Toleration lets the pods run on nodes with a matching taint.
type Toleration struct {
	Key string `yaml:"key" json:"key"`
	// Operator is "Equal" (the default) or "Exists".
	Operator string `yaml:"operator,omitempty" json:"operator,omitempty"`
	Value    string `yaml:"value,omitempty" json:"value,omitempty"`
	// Effect is "NoSchedule", "PreferNoSchedule" or "NoExecute"; empty
	// matches every effect.
	Effect string `yaml:"effect,omitempty" json:"effect,omitempty"`
	// Seconds bounds how long a NoExecute taint is tolerated (0: forever).
	Seconds int `yaml:"seconds,omitempty" json:"seconds,omitempty"`
}

var (
	// quantity is a Kubernetes quantity: a decimal number and a suffix.
	quantity = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$`)
	// labelName is the name part of a label or annotation key.
	labelName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$`)
	// labelValue is a label's value (empty allowed).
	labelValue = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$`)
	// dnsSubdomain is a name of a Kubernetes object, such as a service
	// account, or a key's prefix.
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)
)

// validatePod checks the pod settings of a kubernetes section.
func validatePod(c *collector, k *Kubernetes) {
	if r := k.Resources; r != nil {
		for _, q := range []struct {
			path string
			v    string
		}{
			{"requests.cpu", r.Requests.CPU}, {"requests.memory", r.Requests.Memory},
			{"limits.cpu", r.Limits.CPU}, {"limits.memory", r.Limits.Memory},
		} {
			if q.v != "" && !quantity.MatchString(q.v) {
				c.add("kubernetes.resources."+q.path, "bad quantity %s: want a number and an optional unit, like 250m or 2 (cpu), 128Mi or 1G (memory)", quote(q.v))
			}
		}
	}
	if sa := k.ServiceAccount; sa != "" && !dnsSubdomain.MatchString(sa) {
		c.add("kubernetes.service_account", "bad service account name %s: want lower-case letters, digits, '-' and '.'", quote(sa))
	}
	keys(c, "kubernetes.node_selector", k.NodeSelector, true, false)
	keys(c, "kubernetes.labels", k.Labels, true, true)
	keys(c, "kubernetes.annotations", k.Annotations, false, true)
	for i, t := range k.Tolerations {
		at := fmt.Sprintf("kubernetes.tolerations[%d]", i)
		if t.Key != "" {
			if msg := keyProblem(t.Key); msg != "" {
				c.add(at+".key", "%s", msg)
			}
		}
		switch t.Operator {
		case "", "Equal":
			if t.Key == "" {
				c.add(at+".key", "is required with operator Equal (operator: Exists without a key tolerates every taint)")
			}
		case "Exists":
			if t.Value != "" {
				c.add(at+".value", "must be empty with operator Exists")
			}
		default:
			c.add(at+".operator", "must be Equal or Exists, got %s", quote(t.Operator))
		}
		switch t.Effect {
		case "", "NoSchedule", "PreferNoSchedule", "NoExecute":
		default:
			c.add(at+".effect", "must be NoSchedule, PreferNoSchedule or NoExecute (or left out for all), got %s", quote(t.Effect))
		}
		if t.Seconds != 0 && t.Effect != "NoExecute" {
			c.add(at+".seconds", "applies to effect NoExecute only")
		}
		if t.Seconds < 0 {
			c.add(at+".seconds", "must not be negative, got %d", t.Seconds)
		}
	}
}

// keys checks the keys (and, for labels, the values) of a map of labels
// or annotations at path; own says whether keys under bluegreen.io/ are
// refused, since bluegreen sets them itself.
func keys(c *collector, path string, m map[string]string, values, own bool) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if msg := keyProblem(k); msg != "" {
			c.add(path+"."+k, "%s", msg)
			continue
		}
		if prefix, _, ok := strings.Cut(k, "/"); ok && own && (prefix == "bluegreen.io" || strings.HasSuffix(prefix, ".bluegreen.io")) {
			c.add(path+"."+k, "keys under bluegreen.io/ are bluegreen's own: it sets them on every pod")
			continue
		}
		if values && !labelValue.MatchString(m[k]) {
			c.add(path+"."+k, "bad label value %s: want at most 63 of letters, digits, '-', '_' and '.', starting and ending with a letter or digit", quote(m[k]))
		}
	}
}

// keyProblem says what is wrong with a label or annotation key, or "".
func keyProblem(k string) string {
	prefix, name, ok := strings.Cut(k, "/")
	if !ok {
		prefix, name = "", k
	}
	switch {
	case ok && (prefix == "" || len(prefix) > 253 || !dnsSubdomain.MatchString(prefix)):
		return fmt.Sprintf("bad key %s: the prefix before / must be a DNS name, like example.com", quote(k))
	case !labelName.MatchString(name):
		return fmt.Sprintf("bad key %s: want a name of at most 63 letters, digits, '-', '_' and '.', optionally after a DNS prefix and /", quote(k))
	}
	return ""
}
