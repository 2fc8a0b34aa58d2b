package spec

import "fmt"

// Kubernetes runs each instance as a pod of an image on a Kubernetes
// cluster, reached by bluegreen's router at the node's address: the pod uses
// the node's network and listens on $PORT, a port bluegreen gives it.
type Kubernetes struct {
	// Image is the reference the revision resolves and pins, as for
	// Docker: to the image's ID on the node, or its registry digest.
	Image string `yaml:"image" json:"image"`
	// Namespace is where the pods run; empty is the server's namespace
	// (bluegreen server --kubernetes-namespace), the only one it runs pods
	// in for now.
	Namespace string `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	// Command replaces the image's CMD; left out, the image's is kept.
	// ${NAME} is expanded as in process.command.
	Command   []string          `yaml:"command,omitempty" json:"command,omitempty"`
	Instances int               `yaml:"instances" json:"instances"`
	Env       map[string]string `yaml:"env" json:"env"`
	// StopSignal is SIGTERM: Kubernetes stops a pod with no other.
	StopSignal  string   `yaml:"stop_signal" json:"stop_signal"`
	StopTimeout Duration `yaml:"stop_timeout" json:"stop_timeout"`
	// Pull says when the node fetches the image from its registry:
	// PullMissing, PullAlways or PullNever (an image imported into the
	// nodes' container runtime, on a cluster with no registry).
	Pull string `yaml:"pull" json:"pull"`
	// Traffic says who carries production traffic: TrafficRouter,
	// bluegreen's router (the default), or TrafficService, Services of the
	// cluster whose selectors bluegreen switches.
	Traffic string `yaml:"traffic" json:"traffic"`
	// Resources are the container's requests and limits, in Kubernetes'
	// quantities ("250m", "128Mi").
	Resources *KubeResources `yaml:"resources,omitempty" json:"resources,omitempty"`
	// ServiceAccount runs the pods as this service account of the
	// namespace, with its token mounted; empty: none is mounted.
	ServiceAccount string `yaml:"service_account,omitempty" json:"service_account,omitempty"`
	// NodeSelector and Tolerations say which nodes may take the pods.
	NodeSelector map[string]string `yaml:"node_selector,omitempty" json:"node_selector,omitempty"`
	Tolerations  []Toleration      `yaml:"tolerations,omitempty" json:"tolerations,omitempty"`
	// Labels and Annotations are added to every pod (never under
	// bluegreen.io/, which bluegreen's own use).
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

// Who carries production traffic of an app on Kubernetes.
const (
	TrafficRouter  = "router"
	TrafficService = "service"
)

// ServiceTraffic says whether the spec's production traffic goes through
// Services of the cluster rather than bluegreen's router.
func (s *Spec) ServiceTraffic() bool {
	return s.Platform == PlatformKubernetes && s.Kubernetes != nil && s.Kubernetes.Traffic == TrafficService && !s.IsStack()
}

// ImageRef returns the image reference of a platform of images and its
// pull policy; "" for a process.
func (s *Spec) ImageRef() (ref, pull string) {
	switch {
	case s.Platform == PlatformDocker && s.Docker != nil:
		return s.Docker.Image, s.Docker.Pull
	case s.Platform == PlatformKubernetes && s.Kubernetes != nil:
		return s.Kubernetes.Image, s.Kubernetes.Pull
	}
	return "", ""
}

func (s *Spec) validateKubernetes(c *collector) {
	k := s.Kubernetes
	if s.Platform != PlatformKubernetes || s.IsStack() {
		return
	}
	if k == nil {
		at, written := c.pos["kubernetes"]
		if !written {
			at = c.lookup("platform")
		}
		c.at(at, "kubernetes", "is required for platform kubernetes: at least image, the image to run (like shop:1.2)")
		return
	}
	if k.Image == "" {
		c.add("kubernetes.image", "is required: the image to run, like shop:1.2 or registry.example.com/shop@sha256:…")
	} else if msg := imageProblem(k.Image); msg != "" {
		c.add("kubernetes.image", "%s", msg)
	}
	if (k.Namespace != "" || s.given["kubernetes.namespace"]) && !appName.MatchString(k.Namespace) {
		c.add("kubernetes.namespace", "bad namespace %s: want 1 to 63 of a-z, 0-9 and '-', not starting or ending with '-'", quote(k.Namespace))
	}
	argv(c, "kubernetes.command", k.Command, k.Env)
	if k.StopSignal != "SIGTERM" {
		c.add("kubernetes.stop_signal", "Kubernetes stops a pod with SIGTERM and no other signal, got %s", quote(k.StopSignal))
	} else {
		s.top().run().validate(c)
	}
	oneOf(c, "kubernetes.pull", k.Pull, PullMissing, PullAlways, PullNever)
	validatePod(c, k)
	oneOf(c, "kubernetes.traffic", k.Traffic, TrafficRouter, TrafficService)
	if k.Traffic == TrafficService {
		for i, st := range s.Strategy.Steps {
			if st.Weight != nil && *st.Weight != 0 && *st.Weight != 100 {
				at := fmt.Sprintf("strategy.steps[%d].weight", i)
				if s.Strategy.expandedFrom != "" {
					at = "strategy.preset"
				}
				c.add(at, "weight %d: with kubernetes.traffic: service a Service selects one fleet at a time, so steps move 0 or 100 %% of the traffic (use AllAtOnce or a pause before 100, or traffic: router for weighted steps)", *st.Weight)
				break
			}
		}
	}
}
