// Package appspec reads a CodeDeploy AppSpec file of the EC2/on-premises
// form (appspec.yml: files, permissions, hooks with scripts) and maps it
// onto bluegreen's spec: every lifecycle event with scripts becomes the
// bluegreen hook event of the same name, and what has no equivalent (files
// copied into place, permissions, runas) is named with what to do instead.
//
// The ECS and Lambda forms (resources, hooks naming Lambda functions) are
// recognised and refused: their hooks are functions in AWS, not scripts a
// bundle carries.
package appspec

import "bluegreen/internal/spec"

// FileName is the AppSpec file's name at the root of a CodeDeploy bundle.
const FileName = "appspec.yml"

// MaxTimeout is the longest timeout CodeDeploy allows a script, in seconds.
const MaxTimeout = 3600

// DefaultTimeout is CodeDeploy's timeout for a script that names none, in
// seconds.
const DefaultTimeout = 3600

// AppSpec is an appspec.yml of the EC2/on-premises form.
type AppSpec struct {
	Version     string
	OS          string
	Files       []File
	Permissions []Permission
	// Hooks are the lifecycle events with their scripts, in the file's order.
	Hooks []Event
	// FileExistsBehavior is DISALLOW, OVERWRITE or RETAIN ("" when not set).
	FileExistsBehavior string
}

// File is one entry of the files section: copy Source (a path in the
// bundle) to Destination on the instance.
type File struct {
	Source      string
	Destination string
	Line        int
}

// Permission is one entry of the permissions section, applied to the files
// copied into place.
type Permission struct {
	Object  string
	Pattern string
	Except  []string
	Owner   string
	Group   string
	Mode    string
	ACLs    []string
	Context *Context // SELinux context, nil when not set
	Type    []string // "file", "directory"
	Line    int
}

// Context is an SELinux security context of a permissions entry.
type Context struct {
	User  string
	Type  string
	Range string
}

// Event is one lifecycle event of the hooks section with its scripts.
type Event struct {
	Name    string
	Scripts []Script
	Line    int
}

// Script is one script of a lifecycle event.
type Script struct {
	// Location is the script's path in the bundle, as written.
	Location string
	// Timeout is in seconds; 0 when the appspec names none (CodeDeploy
	// then allows DefaultTimeout).
	Timeout int
	// Runas is the user CodeDeploy's agent runs the script as ("" for the
	// agent's own, root).
	Runas  string
	Line   int
	Column int
}

// Problem and Errors are the spec's: a problem names the file, line,
// column and key path, like `appspec.yml:12:7: hooks.AfterInstall[0].timeout: ...`.
type (
	Problem = spec.Problem
	Errors  = spec.Errors
)
