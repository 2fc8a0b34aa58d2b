package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/instanceenv"
)

// Labels select the pods; annotations say exactly what a label may only
// say in short (a label's value is at most 63 characters of a narrow
// alphabet). Everything a restarted server needs to adopt a pod is on it.
const (
	labelOwner    = "bluegreen.io/owner" // a hash of the owner
	labelApp      = "bluegreen.io/app"
	labelRevision = "bluegreen.io/revision"
	labelFleet    = "bluegreen.io/fleet"
	labelIndex    = "bluegreen.io/index"
	labelService  = "bluegreen.io/service"  // a stack's service; absent for an app of one
	labelInstance = "bluegreen.io/instance" // the ID, shortened when too long
	labelPort     = "bluegreen.io/port"
	labelRole     = "bluegreen.io/role" // "instance", "app" (the owner of an app's pods) or "resolve"

	annoOwner       = "bluegreen.io/owner"
	annoInstance    = "bluegreen.io/instance"
	annoImage       = "bluegreen.io/image" // the reference the revision pinned
	annoImageID     = "bluegreen.io/image-id"
	annoStopTimeout = "bluegreen.io/stop-timeout"

	// containerName is the name of the app's container in its pod.
	containerName = "app"
	// hostEnv is the variable that tells the app the address to listen
	// on (with PORT).
	hostEnv = "HOST"
)

// podName is the pod of instance id: the ID, prefixed with a short form of
// the owner so that two servers launching the same ID in one namespace do
// not clash.
func (p *Platform) podName(id string) string { return "bg-" + p.tag + "-" + id }

// ownerLabel is the owner as a label's value.
func (p *Platform) ownerLabel() string {
	sum := sha256.Sum256([]byte(p.opts.Owner))
	return hex.EncodeToString(sum[:8])
}

// instanceLabel is id as a label's value: itself when it fits, else its
// start and a hash of the whole.
func instanceLabel(id string) string {
	if len(id) <= 63 {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return strings.TrimRight(id[:52], "-") + "-" + hex.EncodeToString(sum[:5])
}

// ours reports whether the pod belongs to this owner (not to another one
// whose short form happens to be the same).
func (p *Platform) ours(pod *corev1.Pod) bool {
	return pod.Annotations[annoOwner] == p.opts.Owner && pod.Labels[labelRole] == "instance"
}

// selector selects this owner's instances (of app, unless "").
func (p *Platform) selector(app string) string {
	s := labelOwner + "=" + p.ownerLabel() + "," + labelRole + "=instance"
	if app != "" {
		s += "," + labelApp + "=" + app
	}
	return s
}

// escape keeps the kubelet from expanding $(NAME) in what the platform has
// expanded already: "$$" is the kubelet's "$".
func escape(s string) string { return strings.ReplaceAll(s, "$", "$$") }

func escapeAll(args []string) []string {
	if args == nil {
		return nil
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = escape(a)
	}
	return out
}

// podSpec is the pod that runs instance s on port, owned by the app's
// owner object.
func (p *Platform) podSpec(s platform.InstanceSpec, port int, owner metav1.OwnerReference) (*corev1.Pod, error) {
	ct := s.Container
	x := instanceenv.New(s, port, os.LookupEnv)
	args, err := x.Args("command", s.Command)
	if err != nil {
		return nil, err
	}
	command, err := x.Args("entrypoint", ct.Entrypoint)
	if err != nil {
		return nil, err
	}
	env, err := x.Environment(nil)
	if err != nil {
		return nil, err
	}
	var envVars []corev1.EnvVar
	for _, k := range slices.Sorted(maps.Keys(env)) {
		envVars = append(envVars, corev1.EnvVar{Name: k, Value: escape(env[k])})
	}
	if _, ok := env[hostEnv]; !ok {
		// Where the app is reached, so where it must listen: the pod's
		// IP, its node's on the node's network, which only the kubelet
		// knows. An app listening on 127.0.0.1 could not be reached from
		// another pod or node. A spec's own HOST wins.
		envVars = append(envVars, corev1.EnvVar{Name: hostEnv, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"},
		}})
	}
	image, pull := ct.Image.ID, corev1.PullNever
	if ct.Image.Digest != "" {
		// From a registry: the digest names exactly the image pinned, and
		// a node that lacks it can pull it.
		image, pull = ct.Image.Digest, corev1.PullIfNotPresent
		if ct.Pull == platform.PullNever {
			pull = corev1.PullNever
		}
	}
	sec, err := securityOf(s)
	if err != nil {
		return nil, err
	}
	resources, err := resourcesOf(ct)
	if err != nil {
		return nil, err
	}
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	for i, tm := range ct.Tmpfs {
		name := fmt.Sprintf("tmpfs-%d", i)
		ed := &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}
		if tm.SizeBytes > 0 {
			ed.SizeLimit = resource.NewQuantity(tm.SizeBytes, resource.BinarySI)
		}
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: ed}})
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: tm.Target})
	}
	grace := int64(math.Ceil(s.StopTimeout.Seconds()))
	if grace < 1 {
		grace = 30
	}
	noEscalation, automount, automountSA := false, false, false
	labels := map[string]string{
		labelOwner: p.ownerLabel(), labelRole: "instance", labelApp: s.App,
		labelRevision: strconv.FormatInt(s.Revision, 10), labelFleet: s.Fleet,
		labelIndex: strconv.Itoa(s.Index), labelInstance: instanceLabel(s.ID),
		labelPort: strconv.Itoa(port),
	}
	if s.Service != "" {
		labels[labelService] = s.Service
	}
	annotations := map[string]string{
		annoOwner: p.opts.Owner, annoInstance: s.ID,
		annoImage: ct.Image.Ref, annoImageID: ct.Image.ID,
		annoStopTimeout: s.StopTimeout.String(),
	}
	ps := ct.Pod
	if ps == nil {
		ps = &platform.PodSettings{}
	}
	// The spec's own first, so that bluegreen's win (the spec refuses
	// keys under bluegreen.io/ anyway).
	labels = merged(ps.Labels, labels)
	annotations = merged(ps.Annotations, annotations)
	if ps.ServiceAccount != "" {
		automountSA = true
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.podName(s.ID), Namespace: p.ns,
			Labels:          labels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{owner},
		},
		Spec: corev1.PodSpec{
			// The router reaches the pod at the node's address and the
			// port given here, which the scheduler keeps free on the node
			// (hostPort): no pod network is needed.
			HostNetwork: true,
			DNSPolicy:   corev1.DNSClusterFirstWithHostNet,
			// A pod that exits stays exited, for the engine to see and
			// replace, as a process or a container does.
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
			EnableServiceLinks:            &automount,
			AutomountServiceAccountToken:  &automountSA,
			ServiceAccountName:            ps.ServiceAccount,
			NodeSelector:                  ps.NodeSelector,
			Tolerations:                   tolerationsOf(ps.Tolerations),
			SecurityContext:               sec,
			Volumes:                       volumes,
			Containers: []corev1.Container{{
				Name: containerName, Image: image, ImagePullPolicy: pull,
				Command: escapeAll(command), Args: escapeAll(args), Env: envVars,
				WorkingDir: ct.WorkDir,
				Ports: []corev1.ContainerPort{{
					Name: "http", ContainerPort: int32(port), HostPort: int32(port), Protocol: corev1.ProtocolTCP,
				}},
				Resources:                resources,
				ReadinessProbe:           readinessOf(ps.Readiness, port),
				VolumeMounts:             mounts,
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				SecurityContext:          &corev1.SecurityContext{AllowPrivilegeEscalation: &noEscalation},
			}},
		},
	}, nil
}

// merged is a copy of a with b's entries over it.
func merged(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	maps.Copy(out, a)
	maps.Copy(out, b)
	return out
}

// resourcesOf is the container's requests and limits: the spec's pod
// resources, and the memory and CPU limits every container platform has.
func resourcesOf(ct *platform.Container) (corev1.ResourceRequirements, error) {
	var r corev1.ResourceRequirements
	list := func(m map[string]string, what string) (corev1.ResourceList, error) {
		if len(m) == 0 {
			return nil, nil
		}
		out := corev1.ResourceList{}
		for k, v := range m {
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return nil, fmt.Errorf("resources.%s.%s %q: %v", what, k, v, err)
			}
			out[corev1.ResourceName(k)] = q
		}
		return out, nil
	}
	var err error
	if ps := ct.Pod; ps != nil {
		if r.Requests, err = list(ps.Requests, "requests"); err != nil {
			return r, err
		}
		if r.Limits, err = list(ps.Limits, "limits"); err != nil {
			return r, err
		}
	}
	if ct.MemoryBytes > 0 || ct.NanoCPUs > 0 {
		if r.Limits == nil {
			r.Limits = corev1.ResourceList{}
		}
		if ct.MemoryBytes > 0 {
			r.Limits[corev1.ResourceMemory] = *resource.NewQuantity(ct.MemoryBytes, resource.BinarySI)
		}
		if ct.NanoCPUs > 0 {
			r.Limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(max(1, ct.NanoCPUs/1e6), resource.DecimalSI)
		}
	}
	return r, nil
}

// readinessOf is the readiness probe of the pod on port (nil for none).
// Kubernetes counts in whole seconds, at least 1.
func readinessOf(pr *platform.Probe, port int) *corev1.Probe {
	if pr == nil {
		return nil
	}
	secs := func(d time.Duration) int32 { return int32(max(1, math.Ceil(d.Seconds()))) }
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: pr.Path, Port: intstr.FromInt32(int32(port)),
		}},
		PeriodSeconds:    secs(pr.Interval),
		TimeoutSeconds:   secs(pr.Timeout),
		SuccessThreshold: int32(max(1, pr.HealthyThreshold)),
		FailureThreshold: int32(max(1, pr.UnhealthyThreshold)),
	}
}

// tolerationsOf is ts as the pod's tolerations.
func tolerationsOf(ts []platform.Toleration) []corev1.Toleration {
	var out []corev1.Toleration
	for _, t := range ts {
		ct := corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOperator(t.Operator), Value: t.Value, Effect: corev1.TaintEffect(t.Effect)}
		if ct.Operator == "" {
			ct.Operator = corev1.TolerationOpEqual
		}
		if t.Seconds > 0 {
			secs := int64(t.Seconds)
			ct.TolerationSeconds = &secs
		}
		out = append(out, ct)
	}
	return out
}

// securityOf is who the pod runs as: the spec's container user (numbers
// only: Kubernetes cannot look a name up in the image), else the
// instance's user, else the image's.
func securityOf(s platform.InstanceSpec) (*corev1.PodSecurityContext, error) {
	if u := s.Container.User; u != "" {
		uid, gid, hasGID := strings.Cut(u, ":")
		sec := &corev1.PodSecurityContext{}
		n, err := strconv.ParseInt(uid, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("container user %q: the kubernetes platform needs a numeric uid (and gid), as \"1000\" or \"1000:1000\"", u)
		}
		sec.RunAsUser = &n
		if hasGID {
			g, err := strconv.ParseInt(gid, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("container user %q: the kubernetes platform needs a numeric gid", u)
			}
			sec.RunAsGroup = &g
		}
		return sec, nil
	}
	if s.User == nil {
		return nil, nil
	}
	uid, gid := int64(s.User.UID), int64(s.User.GID)
	sec := &corev1.PodSecurityContext{RunAsUser: &uid, RunAsGroup: &gid}
	for _, g := range s.User.Groups {
		sec.SupplementalGroups = append(sec.SupplementalGroups, int64(g))
	}
	return sec, nil
}

// checkSpec refuses what a pod in namespace ns cannot do.
func checkSpec(s platform.InstanceSpec, ns string) error {
	ct := s.Container
	if ct == nil {
		return errors.New("the spec has no container settings: the kubernetes platform runs images")
	}
	if ct.Image.ID == "" && ct.Image.Digest == "" {
		return fmt.Errorf("image %s was not pinned to an ID", ct.Image.Ref)
	}
	if s.StopSignal != "" && s.StopSignal != "SIGTERM" {
		return fmt.Errorf("stop signal %s: a pod is stopped with SIGTERM (or its image's STOPSIGNAL); the kubernetes platform cannot send another", s.StopSignal)
	}
	if len(ct.Volumes) > 0 {
		return fmt.Errorf("volume %s: the kubernetes platform cannot mount the revision's files into a pod (they are on the server, not on the node)", ct.Volumes[0].Target)
	}
	if _, err := securityOf(s); err != nil {
		return err
	}
	if ct.Namespace != "" && ct.Namespace != ns {
		return fmt.Errorf("namespace %s: this server runs its pods in namespace %s (its --kubernetes-namespace)", ct.Namespace, ns)
	}
	if ct.Auth != nil {
		return errors.New("registry credentials: the kubernetes platform does not pass them to the node yet; give the namespace's service account an imagePullSecret")
	}
	return nil
}

// startedAt is when the app's container started, else when the pod did.
func startedAt(pod *corev1.Pod) metav1.Time {
	if cs := appStatus(pod); cs != nil {
		if r := cs.State.Running; r != nil {
			return r.StartedAt
		}
		if t := cs.State.Terminated; t != nil && !t.StartedAt.IsZero() {
			return t.StartedAt
		}
	}
	return metav1.Time{}
}

// appStatus is the status of the app's container, nil before it has one.
func appStatus(pod *corev1.Pod) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == containerName {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// portOf is the port the platform gave the pod.
func portOf(pod *corev1.Pod) string { return pod.Labels[labelPort] }

// address is where the router reaches the pod: the node's address (a pod
// on the host's network has it as its IP) and its port; "" before the pod
// has been placed on a node.
func address(pod *corev1.Pod) string {
	ip := pod.Status.PodIP
	if ip == "" {
		ip = pod.Status.HostIP
	}
	if ip == "" {
		return ""
	}
	return net.JoinHostPort(ip, portOf(pod))
}
