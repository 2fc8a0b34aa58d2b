package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bluegreen/internal/platform"
)

// probeCommand is what a resolving pod runs: a path no image has, so that
// nothing of the image runs. The container is created, which is all it
// takes for the node to find (or pull) the image and say its ID.
const probeCommand = "/.bluegreen-resolve-only"

// Resolve pins the image ref names as a node of the cluster has it. The
// API server does not tell images' IDs, so a short-lived pod of the image
// is created (its command replaced by a path that does not exist, so
// nothing of the image runs) and the kubelet reports the image it created
// the container from: its ID ("sha256:…") for an image imported into the
// node's runtime, or its repository digest for an image pulled from a
// registry. pull says how the node may get it: PullNever (imported images:
// a cluster with no registry), PullMissing (the default: when the node
// lacks it), PullAlways. An image the node cannot have is an error naming
// ref and the kubelet's reason (ErrImageNeverPull, ErrImagePull), wrapping
// platform.ErrImage.
func (p *Platform) Resolve(ctx context.Context, ref, pull string, auth *platform.RegistryAuth) (platform.Image, error) {
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return platform.Image{}, kindErrorf(platform.ErrImage, "image reference %q is malformed: %v", ref, err)
	}
	policy := corev1.PullIfNotPresent
	switch pull {
	case "", platform.PullMissing:
	case platform.PullAlways:
		policy = corev1.PullAlways
	case platform.PullNever:
		policy = corev1.PullNever
	default:
		return platform.Image{}, fmt.Errorf("image %s: unknown pull policy %q (want %s, %s or %s)", ref, pull, platform.PullMissing, platform.PullAlways, platform.PullNever)
	}
	if auth != nil {
		return platform.Image{}, errors.New("registry credentials: the kubernetes platform does not pass them to the node yet; give the namespace's service account an imagePullSecret")
	}
	suffix := make([]byte, 5)
	rand.Read(suffix)
	name := "bg-" + p.tag + "-resolve-" + hex.EncodeToString(suffix)
	zero, no := int64(0), false
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: p.ns,
			Labels:      map[string]string{labelOwner: p.ownerLabel(), labelRole: "resolve"},
			Annotations: map[string]string{annoOwner: p.opts.Owner, annoImage: ref},
		},
		Spec: corev1.PodSpec{
			HostNetwork:                   true,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &zero,
			EnableServiceLinks:            &no,
			AutomountServiceAccountToken:  &no,
			Containers: []corev1.Container{{
				Name: containerName, Image: ref, ImagePullPolicy: policy, Command: []string{probeCommand},
			}},
		},
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	created, err := p.cs.CoreV1().Pods(p.ns).Create(cctx, probe, metav1.CreateOptions{})
	if err != nil {
		return platform.Image{}, p.apiErr(cctx, "resolving image "+ref+": creating pod "+p.ns+"/"+name, err)
	}
	defer func() {
		if err := p.deletePod(context.WithoutCancel(ctx), created, 0); err != nil {
			p.log.Warn("deleting the pod that resolved an image", "pod", name, "err", err)
		}
	}()

	wctx, wcancel := context.WithTimeout(ctx, p.opts.StartTimeout)
	defer wcancel()
	var last *corev1.Pod
	err = p.watchPod(wctx, name, func(pod *corev1.Pod) bool {
		last = pod
		if pod == nil {
			return true
		}
		if cs := appStatus(pod); cs != nil && cs.ImageID != "" {
			return true
		}
		return stateOf(pod).state == platform.StateExited
	})
	if last == nil {
		return platform.Image{}, fmt.Errorf("resolving image %s: pod %s/%s was deleted", ref, p.ns, name)
	}
	if cs := appStatus(last); cs != nil && cs.ImageID != "" {
		return pinned(ref, cs.ImageID), nil
	}
	st := stateOf(last)
	switch {
	case err != nil && wctx.Err() != nil && ctx.Err() == nil:
		return platform.Image{}, fmt.Errorf("resolving image %s: pod %s/%s did not get it within %v: %s", ref, p.ns, name, p.opts.StartTimeout, waitingText(last))
	case err != nil:
		return platform.Image{}, fmt.Errorf("resolving image %s: %w", ref, err)
	case st.image:
		how := ""
		if policy == corev1.PullNever {
			how = " (pull: never: import it into the node's container runtime)"
		}
		return platform.Image{}, kindErrorf(platform.ErrImage, "image %s is not to be had on the cluster's node %s%s: %s", ref, last.Spec.NodeName, how, st.reason)
	}
	return platform.Image{}, fmt.Errorf("resolving image %s: pod %s/%s: %s", ref, p.ns, name, st.reason)
}

// pinned is the image the kubelet reports: an ID ("sha256:…"), or a
// repository digest ("127.0.0.1:5000/shop@sha256:…", which the runtime may
// prefix with its scheme).
func pinned(ref, imageID string) platform.Image {
	for _, prefix := range []string{"docker-pullable://", "docker://"} {
		imageID = strings.TrimPrefix(imageID, prefix)
	}
	if _, digest, ok := strings.Cut(imageID, "@"); ok {
		return platform.Image{Ref: ref, ID: digest, Digest: imageID}
	}
	return platform.Image{Ref: ref, ID: imageID}
}
