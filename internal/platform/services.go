package platform

import "time"

// ServiceSelection says which fleet (slot) each Service of an app selects,
// for a platform whose Services carry traffic instead of bluegreen's
// router: "" selects no pod.
type ServiceSelection struct {
	// Production is the fleet of the Service named for the app (the live
	// fleet, or green once it has the traffic); Test is green while the
	// test listener serves it; Blue and Green are the fleets of those
	// roles.
	Production, Test, Blue, Green string
	// Want is the number of ready pods each fleet must have before a
	// Service is pointed at it, and that its endpoints must then hold.
	Want map[string]int
	// Timeout bounds the wait for the endpoints to show the change.
	Timeout time.Duration
}

// Probe is an HTTP check of an instance that a platform runs itself (a
// pod's readiness probe): GET Path on the instance's port.
type Probe struct {
	Path             string
	Interval         time.Duration
	Timeout          time.Duration
	HealthyThreshold int
	// UnhealthyThreshold failures in a row make the instance not ready.
	UnhealthyThreshold int
}
