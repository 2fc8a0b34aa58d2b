package kubernetes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"bluegreen/internal/platform"
)

// noFleet is the fleet label a Service selects when it should select no
// pod: no pod has it.
const noFleet = "none"

// SwitchServices points the Services of app at the fleets sel names, one
// selector update each (with the object's resourceVersion as precondition,
// so that a change made meanwhile is read again, never overwritten), and
// returns once the EndpointSlices of the production and test Services hold
// exactly the ready pods of their fleets, as many as sel.Want asks. Neither
// is ever pointed at a fleet with fewer ready pods than that: the call
// fails, and the Service keeps the fleet it had. APP-blue and APP-green
// follow their roles' fleets as they are.
func (p *Platform) SwitchServices(ctx context.Context, app string, sel platform.ServiceSelection) error {
	owner, err := p.appOwner(ctx, app)
	if err != nil {
		return err
	}
	timeout := sel.Timeout
	if timeout <= 0 {
		timeout = p.opts.Timeout
	}
	for _, s := range []struct {
		name, fleet string
		checked     bool
	}{
		{app, sel.Production, true}, {app + "-test", sel.Test, true},
		// Pinned to a role: they follow the fleets, ready or not.
		{app + "-blue", sel.Blue, false}, {app + "-green", sel.Green, false},
	} {
		want := sel.Want[s.fleet]
		if s.checked && s.fleet != "" {
			ready, err := p.readyPods(ctx, app, s.fleet)
			if err != nil {
				return err
			}
			if len(ready) < want {
				return fmt.Errorf("service %s/%s: fleet %s has %d of %d pods ready; not switching to it", p.ns, s.name, s.fleet, len(ready), want)
			}
		}
		if err := p.selectFleet(ctx, s.name, app, s.fleet, owner); err != nil {
			return err
		}
		if !s.checked {
			continue
		}
		if err := p.waitEndpoints(ctx, s.name, app, s.fleet, want, timeout); err != nil {
			return err
		}
	}
	return nil
}

// selectFleet makes Service name select the pods of app's fleet (none
// when fleet is ""), creating it the first time.
func (p *Platform) selectFleet(ctx context.Context, name, app, fleet string, owner metav1.OwnerReference) error {
	if fleet == "" {
		fleet = noFleet
	}
	selector := map[string]string{
		labelOwner: p.ownerLabel(), labelRole: "instance", labelApp: app, labelFleet: fleet,
	}
	svcs := p.cs.CoreV1().Services(p.ns)
	for range 5 {
		cctx, cancel := p.call(ctx)
		svc, err := svcs.Get(cctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = svcs.Create(cctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{
					Name: name, Namespace: p.ns,
					Labels:          map[string]string{labelOwner: p.ownerLabel(), labelRole: "service", labelApp: app},
					Annotations:     map[string]string{annoOwner: p.opts.Owner},
					OwnerReferences: []metav1.OwnerReference{owner},
				},
				Spec: corev1.ServiceSpec{
					Selector: selector,
					// Each pod has a port of its own, named http.
					Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
				},
			}, metav1.CreateOptions{})
		case err != nil:
		case svc.Annotations[annoOwner] != p.opts.Owner:
			cancel()
			return fmt.Errorf("service %s/%s belongs to another bluegreen server (%s) or to no bluegreen server", p.ns, name, svc.Annotations[annoOwner])
		case maps.Equal(svc.Spec.Selector, selector):
			cancel()
			return nil
		default:
			// Update carries the resourceVersion read above: a Service
			// changed since is a conflict, read again.
			svc.Spec.Selector = selector
			_, err = svcs.Update(cctx, svc, metav1.UpdateOptions{})
		}
		cancel()
		if err == nil {
			p.log.Info("service selects fleet", "service", name, "fleet", fleet)
			return nil
		}
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			return p.apiErr(cctx, "switching service "+p.ns+"/"+name+" to fleet "+fleet, err)
		}
	}
	return fmt.Errorf("switching service %s/%s to fleet %s: it kept changing under the switch", p.ns, name, fleet)
}

// readyPods are the names of the running, ready pods of app's fleet.
func (p *Platform) readyPods(ctx context.Context, app, fleet string) ([]string, error) {
	cctx, cancel := p.call(ctx)
	defer cancel()
	pods, err := p.cs.CoreV1().Pods(p.ns).List(cctx, metav1.ListOptions{LabelSelector: p.selector(app) + "," + labelFleet + "=" + fleet})
	if err != nil {
		return nil, p.apiErr(cctx, "listing the pods of fleet "+fleet, err)
	}
	var out []string
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
			continue
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, pod.Name)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Endpoints returns the pods the EndpointSlices of Service name list, and
// which of them are ready, sorted.
func (p *Platform) Endpoints(ctx context.Context, name string) (all, ready []string, err error) {
	cctx, cancel := p.call(ctx)
	defer cancel()
	slices_, err := p.cs.DiscoveryV1().EndpointSlices(p.ns).List(cctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
	if err != nil {
		return nil, nil, p.apiErr(cctx, "listing the endpoints of service "+p.ns+"/"+name, err)
	}
	for _, s := range slices_.Items {
		for _, ep := range s.Endpoints {
			if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
				continue
			}
			all = append(all, ep.TargetRef.Name)
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				ready = append(ready, ep.TargetRef.Name)
			}
		}
	}
	slices.Sort(all)
	slices.Sort(ready)
	return all, ready, nil
}

// waitEndpoints waits until Service name's endpoints are exactly the ready
// pods of app's fleet, at least want of them (none for fleet "").
func (p *Platform) waitEndpoints(ctx context.Context, name, app, fleet string, want int, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	since := time.Now().Add(-time.Second)
	var last string
	for {
		var pods []string
		var err error
		if fleet != "" {
			pods, err = p.readyPods(wctx, app, fleet)
		}
		var all, ready []string
		if err == nil {
			all, ready, err = p.Endpoints(wctx, name)
		}
		if err == nil {
			if slices.Equal(all, pods) && slices.Equal(ready, pods) && len(ready) >= want {
				return nil
			}
			last = fmt.Sprintf("its endpoints are [%s] (ready: [%s]); fleet %s's ready pods are [%s]",
				strings.Join(all, " "), strings.Join(ready, " "), cmp.Or(fleet, "none"), strings.Join(pods, " "))
			if why := p.endpointTrouble(wctx, name, since); why != "" {
				return kindErrorf(platform.ErrRefused, "service %s/%s: the cluster cannot record fleet %s's pods as its endpoints: %s",
					p.ns, name, cmp.Or(fleet, "none"), why)
			}
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return fmt.Errorf("service %s/%s does not show fleet %s within %v: %s", p.ns, name, cmp.Or(fleet, "none"), timeout, last)
		case <-time.After(100 * time.Millisecond):
			// The endpoint controller catches up in well under a second;
			// a watch would not make the switch any sooner.
		}
	}
}

// endpointTrouble is what the cluster's endpoint controller said, since
// then, of why it cannot write Service name's EndpointSlices ("" when it
// said nothing): such a Service will never show its pods.
func (p *Platform) endpointTrouble(ctx context.Context, name string, since time.Time) string {
	cctx, cancel := p.call(ctx)
	defer cancel()
	evs, err := p.cs.CoreV1().Events(p.ns).List(cctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Service,involvedObject.name=" + name + ",reason=FailedToUpdateEndpointSlices",
	})
	if err != nil {
		return ""
	}
	for _, ev := range evs.Items {
		if t := ev.LastTimestamp.Time; t.IsZero() || t.After(since) || ev.EventTime.After(since) {
			return ev.Message
		}
	}
	return ""
}
