package kubernetes

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
)

// getPod returns the pod named name, nil when there is none.
func (p *Platform) getPod(ctx context.Context, name string) (*corev1.Pod, error) {
	cctx, cancel := p.call(ctx)
	defer cancel()
	pod, err := p.cs.CoreV1().Pods(p.ns).Get(cctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, p.apiErr(cctx, "reading pod "+p.ns+"/"+name, err)
	}
	return pod, nil
}

// saw tells the cache a state of a pod of this owner that the platform
// read or wrote itself: List of its app must not show an older one.
func (p *Platform) saw(pod *corev1.Pod) {
	if pod != nil && pod.Labels[labelOwner] == p.ownerLabel() && pod.Labels[labelRole] == "instance" {
		p.cache.saw(pod)
	}
}

// deleteNow deletes the pod (that very pod, by UID) with the grace period
// given in seconds, and tells the cache what the API server answered: the
// pod marked for deletion, or deleted, at the deletion's version.
func (p *Platform) deleteNow(ctx context.Context, pod *corev1.Pod, seconds int64) error {
	uid := pod.UID
	opts := metav1.DeleteOptions{GracePeriodSeconds: &seconds, Preconditions: &metav1.Preconditions{UID: &uid}}
	obj, err := p.cs.CoreV1().RESTClient().Delete().Namespace(p.ns).Resource("pods").Name(pod.Name).
		Body(&opts).Do(ctx).Get()
	if got, ok := obj.(*corev1.Pod); ok && err == nil {
		p.saw(got)
	}
	return err
}

// watchPod calls done with the pod named name as it is now and after each
// change (nil once it is gone) until done says so or ctx ends. It watches
// the pod instead of polling it, and starts again where it left off when
// the API server ends a watch.
func (p *Platform) watchPod(ctx context.Context, name string, done func(*corev1.Pod) bool) error {
	for {
		pod, err := p.getPod(ctx, name)
		if err != nil {
			return err
		}
		p.saw(pod)
		if done(pod) {
			return nil
		}
		if pod == nil {
			return fmt.Errorf("pod %s/%s is gone", p.ns, name)
		}
		w, err := p.cs.CoreV1().Pods(p.ns).Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
			ResourceVersion: pod.ResourceVersion,
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return p.apiErr(ctx, "watching pod "+p.ns+"/"+name, err)
		}
		finished, err := p.follow(ctx, name, w, done)
		w.Stop()
		if finished || err != nil {
			return err
		}
	}
}

// follow passes the watch's pods to done until it says so (true), the
// watch ends (false: start a new one) or ctx ends.
func (p *Platform) follow(ctx context.Context, name string, w watch.Interface, done func(*corev1.Pod) bool) (bool, error) {
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				pod, ok := ev.Object.(*corev1.Pod)
				p.saw(pod)
				if ok && done(pod) {
					return true, nil
				}
			case watch.Deleted:
				if pod, ok := ev.Object.(*corev1.Pod); ok {
					p.saw(pod) // its version is the deletion's
				}
				if done(nil) {
					return true, nil
				}
				return true, fmt.Errorf("pod %s/%s was deleted", p.ns, name)
			case watch.Error:
				return false, nil // too old a version, say: read the pod again
			}
		}
	}
}
