package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"bluegreen/internal/platform"
)

// Launch starts the instance's pod, or returns it if it already runs (or is
// starting). A pod of the ID that has exited is deleted and replaced,
// possibly on another port. Launch returns once the app's container has
// started (not once it is healthy), or with an error when the pod cannot
// start: its image cannot be had (wrapping platform.ErrImage), it cannot be
// created, or no node takes it within Options.StartTimeout. Such a pod is
// deleted.
func (p *Platform) Launch(ctx context.Context, s platform.InstanceSpec) (platform.Instance, error) {
	if err := platform.CheckID(s.ID); err != nil {
		return platform.Instance{}, fmt.Errorf("launching instance: %w", err)
	}
	unlock := p.locks.Lock(s.ID)
	defer unlock()
	in, err := p.launch(ctx, s)
	if err != nil {
		return platform.Instance{}, fmt.Errorf("launching instance %s: %w", s.ID, err)
	}
	p.log.Info("launched instance", "instance", s.ID, "pod", p.podName(s.ID), "address", in.Address, "state", in.State)
	return in, nil
}

func (p *Platform) launch(ctx context.Context, s platform.InstanceSpec) (platform.Instance, error) {
	if err := checkSpec(s, p.ns); err != nil {
		return platform.Instance{}, err
	}
	name := p.podName(s.ID)
	pod, err := p.getPod(ctx, name)
	if err != nil {
		return platform.Instance{}, err
	}
	if pod != nil && !p.ours(pod) {
		return platform.Instance{}, fmt.Errorf("pod %s/%s belongs to another bluegreen server (%s)", p.ns, name, pod.Annotations[annoOwner])
	}
	switch {
	case pod == nil:
	case pod.DeletionTimestamp != nil:
		// Being stopped (by someone else): its app may still hold the port.
		if err := p.waitGone(ctx, name, pod.UID, p.opts.StartTimeout); err != nil {
			return platform.Instance{}, err
		}
	case stateOf(pod).state == platform.StateRunning:
		return p.waitStarted(ctx, name)
	default:
		// Nothing of it runs any more.
		if err := p.deletePod(ctx, pod, 0); err != nil {
			return platform.Instance{}, fmt.Errorf("removing the exited pod: %w", err)
		}
	}
	owner, err := p.appOwner(ctx, s.App)
	if err != nil {
		return platform.Instance{}, err
	}
	used, err := p.usedPorts(ctx)
	if err != nil {
		return platform.Instance{}, err
	}
	port, release, err := p.ports.Allocate(used)
	if err != nil {
		return platform.Instance{}, err
	}
	defer release() // by then the pod holds the port in its label
	spec, err := p.podSpec(s, port, owner)
	if err != nil {
		return platform.Instance{}, err
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	created, err := p.cs.CoreV1().Pods(p.ns).Create(cctx, spec, metav1.CreateOptions{})
	if err == nil {
		p.saw(created)
	}
	if apierrors.IsAlreadyExists(err) {
		// Another Platform value of this owner (a server restarted while
		// this one launched) created it first.
		return p.waitStarted(ctx, name)
	}
	if err != nil {
		return platform.Instance{}, p.apiErr(cctx, "creating pod "+p.ns+"/"+name, err)
	}
	return p.waitStarted(ctx, name)
}

// waitStarted waits until the pod's app container has started (or ended),
// and deletes the pod when it cannot start.
func (p *Platform) waitStarted(ctx context.Context, name string) (platform.Instance, error) {
	wctx, cancel := context.WithTimeout(ctx, p.opts.StartTimeout)
	defer cancel()
	var last *corev1.Pod
	err := p.watchPod(wctx, name, func(pod *corev1.Pod) bool {
		last = pod
		if pod == nil {
			return true
		}
		st := stateOf(pod)
		return st.started || st.state == platform.StateExited
	})
	if last == nil {
		return platform.Instance{}, fmt.Errorf("pod %s/%s was deleted as it started", p.ns, name)
	}
	st := stateOf(last)
	if err == nil && st.started {
		return p.instance(last), nil
	}
	what := fmt.Sprintf("pod %s/%s cannot start", p.ns, name)
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		what = fmt.Sprintf("pod %s/%s did not start within %v", p.ns, name, p.opts.StartTimeout)
		if st.reason == "" {
			st.reason = waitingText(last)
		}
	case err != nil:
		return platform.Instance{}, err
	}
	if derr := p.deletePod(context.WithoutCancel(ctx), last, 0); derr != nil {
		p.log.Warn("deleting a pod that could not start", "pod", name, "err", derr)
	}
	if st.image {
		return platform.Instance{}, kindErrorf(platform.ErrImage, "%s: %s", what, st.reason)
	}
	return platform.Instance{}, fmt.Errorf("%s: %s", what, st.reason)
}

// waitingText says what a pod that has not started waits for.
func waitingText(pod *corev1.Pod) string {
	if cs := appStatus(pod); cs != nil && cs.State.Waiting != nil {
		return reasonText(cs.State.Waiting.Reason, cs.State.Waiting.Message)
	}
	if pod.Spec.NodeName == "" {
		return "not scheduled on a node yet"
	}
	return "phase " + string(pod.Status.Phase)
}

// appOwner returns the owner of the app's pods, creating it at the first
// launch: a ConfigMap named for the owner and the app. Deleting it (see
// DeleteApp) has the cluster delete every pod of the app.
func (p *Platform) appOwner(ctx context.Context, app string) (metav1.OwnerReference, error) {
	name := "bg-" + p.tag + "-" + app
	cctx, cancel := p.call(ctx)
	defer cancel()
	cms := p.cs.CoreV1().ConfigMaps(p.ns)
	cm, err := cms.Get(cctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm, err = cms.Create(cctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: p.ns,
				Labels:      map[string]string{labelOwner: p.ownerLabel(), labelRole: "app", labelApp: app},
				Annotations: map[string]string{annoOwner: p.opts.Owner},
			},
			Data: map[string]string{"app": app, "owner": p.opts.Owner},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			cm, err = cms.Get(cctx, name, metav1.GetOptions{})
		}
	}
	if err != nil {
		return metav1.OwnerReference{}, p.apiErr(cctx, "reading the owner of app "+app+" (configmap "+p.ns+"/"+name+")", err)
	}
	if cm.Annotations[annoOwner] != p.opts.Owner {
		return metav1.OwnerReference{}, fmt.Errorf("configmap %s/%s belongs to another bluegreen server (%s)", p.ns, name, cm.Annotations[annoOwner])
	}
	return metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: cm.Name, UID: cm.UID}, nil
}

// usedPorts returns the ports of every bluegreen pod of the namespace that
// runs or is about to, whoever its owner: they share the node's ports.
func (p *Platform) usedPorts(ctx context.Context) (map[int]bool, error) {
	cctx, cancel := p.call(ctx)
	defer cancel()
	pods, err := p.cs.CoreV1().Pods(p.ns).List(cctx, metav1.ListOptions{LabelSelector: labelPort})
	if err != nil {
		return nil, p.apiErr(cctx, "listing the ports of pods in namespace "+p.ns, err)
	}
	used := map[int]bool{}
	for _, pod := range pods.Items {
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		if port, err := strconv.Atoi(portOf(&pod)); err == nil {
			used[port] = true
		}
	}
	return used, nil
}

// deletePod deletes the pod (that very pod: not one made since with the
// same name) with the grace period given in seconds, and waits until it is
// gone.
func (p *Platform) deletePod(ctx context.Context, pod *corev1.Pod, grace int64) error {
	cctx, cancel := p.call(ctx)
	defer cancel()
	uid := pod.UID
	err := p.deleteNow(cctx, pod, grace)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return p.apiErr(cctx, "deleting pod "+p.ns+"/"+pod.Name, err)
	}
	return p.waitGone(ctx, pod.Name, uid, p.opts.Timeout)
}

// waitGone waits up to timeout until the pod with uid is gone.
func (p *Platform) waitGone(ctx context.Context, name string, uid types.UID, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := p.watchPod(wctx, name, func(pod *corev1.Pod) bool { return pod == nil || pod.UID != uid })
	if err != nil {
		return fmt.Errorf("waiting for pod %s/%s to go: %w", p.ns, name, err)
	}
	return nil
}
