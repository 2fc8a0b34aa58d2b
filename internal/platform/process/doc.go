// Package process is the platform that runs instances as local processes:
// the embedded default, for a laptop or a VM.
//
// # Shim
//
// Launch starts a small shim per instance ("bluegreen instance-shim ID") in
// a session of its own. The shim starts the app in a process group of its
// own, copies the app's stdout and stderr (one pipe, so lines keep their
// order) into the instance's rotated log file, relays the server's stop and
// kill requests to the app's process group, writes the app's exit status
// when it ends, and exits. The app's output never goes through the server,
// so the server can restart (or be killed) without the app meeting a broken
// pipe or losing a line.
//
// The shim is a child subreaper (PR_SET_CHILD_SUBREAPER): descendants that
// daemonize (double fork, setsid) become its children instead of init's.
// When the app exits, whether stopped or by itself, the shim SIGKILLs every
// process still below it and reaps them, so an instance never leaves an
// orphan behind. Should the shim itself be killed, the app gets SIGKILL
// (Pdeathsig), but what the app started would then outlive it: the server
// never sends the shim SIGKILL unless it fails to end after its app was
// killed.
//
// The app's group, not the shim, receives the stop signal and SIGKILL: the
// shim must outlive the app to collect its last output and its leftovers.
// The server does not signal the group itself but asks the shim (SIGTERM:
// send the stop signal; SIGUSR1: send SIGKILL), and the shim signals the
// group only while the app is its unreaped child, so a process group ID
// reused after the app is gone can never be hit.
//
// With Options.ShimPerFleet, one shim watches every instance of a fleet
// instead (fleetshim.go): further instances, stop and kill requests reach
// it on its socket rather than by signals, and it ends after its last.
//
// # User
//
// The shim stays the server's user; the app runs as InstanceSpec.User (its
// user, group and exactly its supplementary groups), so it cannot read the
// log and the records the shim writes, which are the server's alone (files
// 0600, directories 0700).
//
// # Environment
//
// An instance's environment is built, not inherited: PATH, HOME, USER,
// LOGNAME, SHELL, LANG, LANGUAGE, TZ, TMPDIR and LC_* from the server (HOME,
// USER and LOGNAME of InstanceSpec.User when there is one), then
// the spec's Vars (pinned params, BG_APP, BG_REVISION, BG_FLEET,
// BG_INSTANCE), then the spec's Env, then PORT. Anything else in the
// server's environment (its own credentials) stays out unless the spec asks
// for it by name: ${NAME} in Command and Env is expanded from PORT, Vars and
// the whole server environment, and an unset name fails Launch.
//
// # Ports
//
// Each instance gets a port the kernel offers on Host (listen on port 0,
// close), skipping ports recorded by running instances or held by launches in
// progress. Another program could take the port between the close and the
// app's bind; the app then fails to start or to answer its health check and
// the engine replaces it.
//
// # State directory
//
//	instances/ID.json       the record: identity, port, pids and start times
//	instances/ID.exit.json  the app's exit status, written by the shim last
//	logs/ID.log, ID.log.N   output; rotated at LogMaxBytes, LogKeep old files
//
// Records are written atomically (temp file, fsync, rename, fsync of the
// directory) by the shim once the app has started. A process is identified by
// its PID and its start time (field 22 of /proc/PID/stat), so a PID reused by
// another process is never taken for the instance. A new Platform on the same
// directory, after a restart or a kill -9 of the server, adopts the instances
// still running and reports the others as exited. Stop removes the record;
// the logs stay, readable through Logs, until RemoveLogs.
//
// # Logs
//
// The platform keeps the last RingLines lines of each instance in memory,
// with the secrets Options.Redact names hidden, by following its log file (and after a restart rebuilds them from the files'
// tail). Output is read every Poll; a follower that cannot keep up with it
// is disconnected rather than slowing the others.
package process
