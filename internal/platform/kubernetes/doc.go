// Package kubernetes is the platform that runs instances as pods of a
// Kubernetes cluster, through the API server (client-go's typed clientset
// and a shared informer of its pods),
// in one namespace. bluegreen's own router carries the traffic to the
// pods' addresses.
//
// # One pod per instance
//
// Each instance is one pod named bg-OWNER-ID (OWNER: 8 hex digits of a hash
// of Options.Owner), not a replica of a ReplicaSet. The engine names and
// launches every instance itself (Launch is idempotent by ID), checks its
// health and replaces the dead: a pod per instance maps onto that one to
// one. The pods use the host's network and each gets its own port, chosen
// by the platform and declared as the pod's host port, so that the
// scheduler never puts two of them on one port of a node; a ReplicaSet
// stamps every pod from one template, so all would need the same port. The
// price: while the server is down, nothing replaces a pod that dies; the
// restarted server lists it as exited and the engine launches it again,
// as for a container. A cluster with a pod network could use a ReplicaSet
// per fleet, every pod on the same port at its own IP.
//
// # Pods
//
// A pod runs the image the revision pinned (its ID, with imagePullPolicy
// Never, for an image imported into the nodes' runtime; its digest for an
// image from a registry), with HOST (the pod's IP, from the downward API:
// where the app must listen to be reached), PORT, the spec's Vars and its
// expanded Env (instanceenv; "$" is escaped so that the kubelet's own
// $(NAME) expansion leaves them be), restartPolicy Never (a pod that exits stays exited, for
// the engine to see), no service account token, no privilege escalation,
// the spec's memory and CPU as limits, tmpfs as memory-backed emptyDirs, and
// the instance's user (or the spec's numeric container user). A pod is
// stopped with SIGTERM: Kubernetes sends no other stop signal.
//
// # Labels, owners and adoption
//
// Labels select a server's pods (owner, app, revision, fleet, index,
// instance, port); annotations hold what labels cannot (the owner's
// identity, the instance ID in full, the image pinned, the stop timeout).
// Nothing the cluster does not hold is kept in memory, so a new Platform
// with the same owner (a restarted server) finds every pod the last one
// left, running or exited. Two servers share a
// namespace without touching each other's pods. Every pod of an app is
// owned by a ConfigMap of the app (bg-OWNER-APP): deleting it (DeleteApp)
// has the cluster's garbage collector delete the pods.
//
// # Reads
//
// List reads the owner's pods from one shared informer (a LIST, then a
// WATCH, of the pods with the owner's label in the namespace, indexed by
// app), started at the first List and stopped by Close: the engine lists
// every app every few seconds, which would otherwise be a LIST each. The
// informer is read only while it is synced, its watch is open, and it
// shows at least the versions of the pods Launch and Stop read or wrote
// (a List waits up to 3 seconds for it to catch up); else List asks the
// API server, which fails with ErrUnavailable when it cannot be reached.
// What decides a write is read fresh from the API server: the pod Launch
// or Stop acts on, the ports in use, the ready pods a Service switch
// checks.
//
// # Errors
//
// An API server that cannot be reached or does not answer within
// Options.Timeout fails the call with an error that wraps
// platform.ErrUnavailable and names the server. An image a node cannot
// have (ErrImageNeverPull, ErrImagePull) fails Launch and Resolve with
// platform.ErrImage and the kubelet's words; a pod that no node takes
// within Options.StartTimeout fails Launch with the scheduler's reason.
package kubernetes
