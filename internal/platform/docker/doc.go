// Package docker is the platform that runs instances as containers on a
// Docker engine, through the engine's API (the Docker Engine Go SDK; the API
// version is negotiated down to what the engine speaks).
//
// # Containers
//
// Each instance is one container named bg-OWNER-ID (OWNER: 8 hex digits of
// a hash of Options.Owner), running the image ID the revision pinned, never
// what its reference means now. It shares the host's network and listens on
// Host:PORT, PORT chosen by the platform like the process platform does; it
// gets PORT, the spec's Vars and its expanded Env (instanceenv), runs as the
// spec's container user or the instance's uid:gid, with the engine's init as
// PID 1, no-new-privileges, no restart policy, the memory and CPU limits of
// the spec, its revision's files as read-only bind mounts, tmpfs mounts, and
// the json-file log driver with bounded files.
//
// # Labels and owners
//
// Labels say everything a restarted server needs: owner, app, revision,
// fleet, index, instance ID, host and port, the pinned image, the stop
// signal. List, Stop and Logs see only the containers labelled with the
// platform's owner, so two servers can share an engine; a new Platform with
// the same owner (a restarted server) adopts the containers as they are.
//
// # Dead containers
//
// A container that exits stays on the engine, listed as exited with its exit
// code, and its output stays readable through Logs until Stop removes it.
//
// # The engine
//
// New does not connect. A call to an engine that is down or does not answer
// within Options.Timeout fails with an error that wraps
// platform.ErrUnavailable and names the engine's address and where it came
// from; calls succeed again once the engine is back. Whether containers
// survive a restart of the engine is the engine's choice (live-restore);
// Describe tells.
package docker
