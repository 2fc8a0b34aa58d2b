package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bluegreen/internal/freeport"
	"bluegreen/internal/testk8s"
)

// startPod creates a pod of the app's image with the settings the
// Kubernetes platform uses (the node's network, a host port of its own,
// the image's ID, never pulled, restartPolicy Never): the pod's own start,
// from the API call to the app answering, is what the cluster costs before
// bluegreen adds anything. Each pod has a name of its own: the kamal-proxy
// model starts the next instances while the last ones still run.
func (e *benchEnv) startPod(ctx context.Context, i int) (started, error) {
	addr, err := freeport.Addr()
	if err != nil {
		return started{}, err
	}
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	// The pod is on the node's network, reached at the node's address.
	addr = net.JoinHostPort(testk8s.NodeIP, p)
	name := fmt.Sprintf("direct-%d-%d", i, podSeq.Add(1))
	pods := e.kcs.CoreV1().Pods(kubeNamespace)
	at := time.Now()
	_, err = pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			HostNetwork:   true,
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "app", Image: e.kubeImageID, ImagePullPolicy: corev1.PullNever,
				Env: []corev1.EnvVar{{Name: "PORT", Value: p}, {Name: "VERSION", Value: "direct"}, {Name: "BG_INSTANCE", Value: name},
					// As the platform sets it: where the app listens.
					{Name: "HOST", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}},
				Ports: []corev1.ContainerPort{{ContainerPort: int32(port), HostPort: int32(port)}},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return started{}, err
	}
	// remove deletes the pod with grace (nil: the pod's own) and waits
	// until it is gone. Not the benchmark's context: a pod is removed even
	// after Ctrl-C, and gone before the next run takes its port.
	remove := func(grace *int64) {
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = pods.Delete(rctx, name, metav1.DeleteOptions{GracePeriodSeconds: grace})
		for rctx.Err() == nil {
			if _, err := pods.Get(rctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return started{addr: addr, at: at,
		term: func() { remove(nil) },
		stop: func() { remove(new(int64(0))) },
	}, nil
}

// podSeq numbers the pods started directly.
var podSeq atomic.Int64
