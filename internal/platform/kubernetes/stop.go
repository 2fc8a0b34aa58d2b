package kubernetes

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bluegreen/internal/platform"
)

// List returns this owner's pods of app (all apps when app is ""), running
// and exited, ordered by instance ID. It reads them from the platform's
// watch of its pods (see podCache) while that is open and shows at least
// what Launch and Stop saw, else from the API server: the cluster is the
// truth, and a restarted server finds there every pod the last one left.
func (p *Platform) List(ctx context.Context, app string) ([]platform.Instance, error) {
	pods, ok := p.cache.pods(ctx, app)
	if !ok {
		var err error
		if pods, err = p.listPods(ctx, app); err != nil {
			return nil, err
		}
	}
	out := []platform.Instance{}
	for _, pod := range pods {
		if !p.ours(pod) || pod.Annotations[annoInstance] == "" {
			continue
		}
		out = append(out, p.instance(pod))
	}
	slices.SortFunc(out, func(a, b platform.Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// listPods asks the API server for this owner's pods of app (all for "").
func (p *Platform) listPods(ctx context.Context, app string) ([]*corev1.Pod, error) {
	cctx, cancel := p.call(ctx)
	defer cancel()
	list, err := p.cs.CoreV1().Pods(p.ns).List(cctx, metav1.ListOptions{LabelSelector: p.selector(app)})
	if err != nil {
		return nil, p.apiErr(cctx, "listing pods in namespace "+p.ns, err)
	}
	pods := make([]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		pods[i] = &list.Items[i]
	}
	return pods, nil
}

// stopSlack is how long Stop waits, beyond the grace period, for the
// kubelet to report the pod's containers gone.
const stopSlack = 30 * time.Second

// Stop deletes the instance's pod with grace as its grace period: the
// kubelet sends SIGTERM, and SIGKILL once grace has passed. Kubernetes
// counts grace periods in whole seconds, and a kubelet kills no sooner
// than 2 seconds after SIGTERM: a shorter grace is rounded up. A negative
// grace means the StopTimeout the instance was launched with. Stop returns
// once the kubelet reports that nothing of the pod runs, and the pod is
// gone; a kubelet that does not report within the grace period and half a
// minute (its node is down) has the pod deleted without it. An unknown ID,
// or a pod of another owner, is not an error.
func (p *Platform) Stop(ctx context.Context, id string, grace time.Duration) error {
	if platform.CheckID(id) != nil {
		return nil
	}
	unlock := p.locks.Lock(id)
	defer unlock()
	pod, err := p.getPod(ctx, p.podName(id))
	if err != nil {
		return fmt.Errorf("stopping instance %s: %w", id, err)
	}
	if pod == nil || !p.ours(pod) {
		return nil
	}
	if grace < 0 {
		grace, _ = time.ParseDuration(pod.Annotations[annoStopTimeout])
	}
	seconds := max(1, int64(math.Ceil(grace.Seconds())))
	if stateOf(pod).state == platform.StateExited && pod.DeletionTimestamp == nil {
		seconds = 0 // nothing runs: no need to wait for the kubelet
	}
	if err := p.stop(ctx, pod, seconds); err != nil {
		return fmt.Errorf("stopping instance %s: %w", id, err)
	}
	p.log.Info("stopped instance", "instance", id, "pod", pod.Name)
	return nil
}

func (p *Platform) stop(ctx context.Context, pod *corev1.Pod, seconds int64) error {
	cctx, cancel := p.call(ctx)
	defer cancel()
	uid := pod.UID
	err := p.deleteNow(cctx, pod, seconds)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return p.apiErr(cctx, "deleting pod "+p.ns+"/"+pod.Name, err)
	}
	// The kubelet reports the container ended, then deletes the pod once
	// it has cleaned up after it, which takes it a second or more: the
	// pod is deleted at once when nothing of it runs any more.
	wait := time.Duration(seconds)*time.Second + stopSlack
	wctx, wcancel := context.WithTimeout(ctx, wait)
	defer wcancel()
	var last *corev1.Pod
	err = p.watchPod(wctx, pod.Name, func(got *corev1.Pod) bool {
		last = got
		return got == nil || got.UID != uid || terminal(got)
	})
	switch {
	case err == nil && (last == nil || last.UID != uid):
		return nil
	case err == nil:
		return p.deletePod(ctx, last, 0)
	case ctx.Err() != nil:
		return fmt.Errorf("waiting for pod %s/%s to stop: %w", p.ns, pod.Name, ctx.Err())
	}
	// The kubelet did not confirm: its node may be gone. Delete the pod
	// without it, as `kubectl delete --force` does.
	p.log.Warn("the kubelet did not stop the pod in time: deleting it without waiting", "pod", pod.Name, "waited", wait)
	return p.deletePod(ctx, pod, 0)
}

// terminal reports a pod whose containers have all ended: nothing of the
// app runs.
func terminal(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
		return false
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Terminated == nil && cs.State.Waiting == nil {
			return false
		}
	}
	return true
}

// DeleteApp deletes the owner of the app's pods, and with it (the cluster's
// garbage collector deletes what an object owns) every pod of the app, and
// waits until they are gone.
func (p *Platform) DeleteApp(ctx context.Context, app string) error {
	name := "bg-" + p.tag + "-" + app
	cctx, cancel := p.call(ctx)
	defer cancel()
	policy := metav1.DeletePropagationBackground
	err := p.cs.CoreV1().ConfigMaps(p.ns).Delete(cctx, name, metav1.DeleteOptions{PropagationPolicy: &policy})
	if err != nil && !apierrors.IsNotFound(err) {
		return p.apiErr(cctx, "deleting app "+app+" (configmap "+p.ns+"/"+name+")", err)
	}
	for {
		ins, err := p.List(ctx, app)
		if err != nil {
			return err
		}
		if len(ins) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deleting app %s: %d pods are still there: %w", app, len(ins), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
