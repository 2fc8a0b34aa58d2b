package kubernetes

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"bluegreen/internal/platform"
)

// hopeless are the reasons a container waits for that do not pass by
// themselves: the image cannot be had, or the container cannot be made.
var hopeless = map[string]bool{
	"ErrImageNeverPull":          true,
	"ErrImagePull":               true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"ImageInspectError":          true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
}

// imageReasons are the hopeless reasons that are the image's fault.
var imageReasons = map[string]bool{
	"ErrImageNeverPull": true, "ErrImagePull": true, "ImagePullBackOff": true,
	"InvalidImageName": true, "ImageInspectError": true,
}

// podState is what became of a pod, as the engine sees an instance.
type podState struct {
	state    platform.State
	exitCode int
	// reason says why a pod that is not running is not: the kubelet's
	// or the scheduler's reason and message ("ErrImageNeverPull: …").
	reason string
	// started says the app's container has run (or runs).
	started bool
	// image says the reason is the image's fault.
	image bool
	// unschedulable says the scheduler finds no node for the pod yet.
	unschedulable bool
}

// stateOf reads a pod's status. A pod runs until its container has
// terminated, its phase is final, it is being deleted, or its container
// waits for something that will not come (an image the node does not
// have and may not pull).
func stateOf(pod *corev1.Pod) podState {
	st := podState{state: platform.StateRunning, exitCode: -1}
	cs := appStatus(pod)
	if cs != nil {
		switch {
		case cs.State.Terminated != nil:
			t := cs.State.Terminated
			st.state, st.exitCode, st.started = platform.StateExited, int(t.ExitCode), true
			st.reason = "exited with code " + strconv.Itoa(int(t.ExitCode))
			if t.Reason != "" && t.Reason != "Completed" && t.Reason != "Error" {
				st.reason = t.Reason + ", " + st.reason
			}
			return st
		case cs.State.Running != nil:
			st.started = true
		case cs.State.Waiting != nil && hopeless[cs.State.Waiting.Reason]:
			w := cs.State.Waiting
			st.state, st.reason, st.image = platform.StateExited, reasonText(w.Reason, w.Message), imageReasons[w.Reason]
			return st
		}
	}
	switch {
	case pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded:
		st.state = platform.StateExited
		st.reason = reasonText(pod.Status.Reason, pod.Status.Message)
		if st.reason == "" {
			st.reason = "pod " + strings.ToLower(string(pod.Status.Phase))
		}
	case pod.DeletionTimestamp != nil:
		st.state, st.reason = platform.StateExited, "being deleted"
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			st.unschedulable = true
			st.reason = reasonText(c.Reason, c.Message)
		}
	}
	return st
}

func reasonText(reason, message string) string {
	switch {
	case reason == "":
		return message
	case message == "":
		return reason
	}
	return reason + ": " + message
}

// instance describes a pod as the engine sees the instance.
func (p *Platform) instance(pod *corev1.Pod) platform.Instance {
	rev, _ := strconv.ParseInt(pod.Labels[labelRevision], 10, 64)
	index, _ := strconv.Atoi(pod.Labels[labelIndex])
	st := stateOf(pod)
	in := platform.Instance{
		ID: pod.Annotations[annoInstance], App: pod.Labels[labelApp], Revision: rev,
		Fleet: pod.Labels[labelFleet], Service: pod.Labels[labelService], Index: index,
		Address: address(pod), State: st.state, ExitCode: st.exitCode,
		StartedAt: startedAt(pod).Time,
		Platform:  p.Name(),
	}
	if st.state == platform.StateRunning {
		in.ExitCode = 0
	}
	if cs := appStatus(pod); cs != nil {
		in.Container = cs.ContainerID
	}
	in.Detail = fmt.Sprintf("pod %s/%s", pod.Namespace, pod.Name)
	if pod.Spec.NodeName != "" {
		in.Detail += " on node " + pod.Spec.NodeName
	}
	in.Detail += fmt.Sprintf(", image %s (%.19s)", pod.Annotations[annoImage], pod.Annotations[annoImageID])
	if st.reason != "" && (st.state == platform.StateExited || st.unschedulable) {
		in.Detail += ": " + st.reason
	}
	return in
}
