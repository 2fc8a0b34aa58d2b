package spec

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
)

// Notification is an outbound webhook: a POST to a URL on chosen events of
// the app's deployments, signed with a secret from the parameter store.
type Notification struct {
	// URL is where the POST goes (http or https). URLParam names a param
	// holding the URL instead, for URLs that are secrets themselves (a
	// Slack incoming webhook). Exactly one of them is set.
	URL      string `yaml:"url,omitempty" json:"url,omitempty"`
	URLParam string `yaml:"url_param,omitempty" json:"url_param,omitempty"`
	// Events are the notification events sent (NotificationEvents; all of
	// them when left out).
	Events []string `yaml:"events" json:"events"`
	// Format is the body: NotifyJSON or NotifySlack.
	Format string `yaml:"format" json:"format"`
	// SecretParam names the param whose value signs each body with
	// HMAC-SHA256; no signature without it.
	SecretParam string `yaml:"secret_param,omitempty" json:"secret_param,omitempty"`
}

// Notification events, in the order a deployment may send them.
const (
	NotifyStarted          = "started"           // a deployment began
	NotifyAwaitingApproval = "awaiting_approval" // it waits for a person: approval, or after inconclusive checks
	NotifyPromoted         = "promoted"          // a person said go
	NotifyRollingBack      = "rolling_back"      // it began rolling back, and why
	NotifyRolledBack       = "rolled_back"       // the rollback ended: blue serves again
	NotifyLive             = "live"              // green became the live revision
	NotifySucceeded        = "succeeded"         // blue retired: the deployment is over
	NotifyFailed           = "failed"            // a rollback could not complete
)

// NotificationEvents are every notification event.
var NotificationEvents = []string{NotifyStarted, NotifyAwaitingApproval, NotifyPromoted, NotifyRollingBack,
	NotifyRolledBack, NotifyLive, NotifySucceeded, NotifyFailed}

// Notification body formats.
const (
	NotifyJSON  = "json"
	NotifySlack = "slack"
)

// DefaultNotifyFormat is the body of a notification that names none.
const DefaultNotifyFormat = NotifyJSON

// MaxNotifications bounds the destinations of one spec (or of the server).
const MaxNotifications = 20

// Wants says whether n sends event.
func (n Notification) Wants(event string) bool { return slices.Contains(n.Events, event) }

func notificationPath(i int) string { return fmt.Sprintf("notifications[%d]", i) }

// applyNotificationDefaults fills the format and events left out.
func applyNotificationDefaults(ns []Notification, given map[string]bool) {
	for i := range ns {
		n := &ns[i]
		if n.Format == "" && !given[notificationPath(i)+".format"] {
			n.Format = DefaultNotifyFormat
		}
		if len(n.Events) == 0 {
			n.Events = slices.Clone(NotificationEvents)
		}
	}
}

// validateNotifications checks each destination. pinned lists the params
// a secret_param or url_param must be one of (the spec's params, so that
// each revision pins their versions); nil takes any param (the server's own
// list, read at their latest versions).
func validateNotifications(c *collector, ns []Notification, pinned []string) {
	if len(ns) > MaxNotifications {
		c.add("notifications", "%d destinations; at most %d", len(ns), MaxNotifications)
	}
	param := func(path, name, what string) {
		switch {
		case !paramName.MatchString(name):
			c.add(path, "bad param name %s: want a path like /shop/%s", quote(name), what)
		case pinned != nil && !slices.Contains(pinned, name):
			c.add(path, "%s is not one of the spec's params (add it to params:, so that each revision pins its version)", quote(name))
		}
	}
	for i, n := range ns {
		p := notificationPath(i)
		switch {
		case n.URL != "" && n.URLParam != "":
			c.add(p, "set url or url_param, not both")
		case n.URL == "" && n.URLParam == "":
			c.add(p, "url is required (or url_param, a param holding the URL)")
		case n.URL != "":
			if problem := checkNotifyURL(n.URL); problem != "" {
				c.add(p+".url", "%s", problem)
			}
		default:
			param(p+".url_param", n.URLParam, "SLACK_WEBHOOK_URL")
		}
		seen := map[string]bool{}
		for j, ev := range n.Events {
			ep := fmt.Sprintf("%s.events[%d]", p, j)
			switch {
			case !slices.Contains(NotificationEvents, ev):
				c.add(ep, "unknown event %s%s; want one of %s", quote(ev), suggest(ev, NotificationEvents), strings.Join(NotificationEvents, ", "))
			case seen[ev]:
				c.add(ep, "event %s is listed twice", quote(ev))
			}
			seen[ev] = true
		}
		oneOf(c, p+".format", n.Format, NotifyJSON, NotifySlack)
		if n.SecretParam != "" {
			param(p+".secret_param", n.SecretParam, "WEBHOOK_SECRET")
		}
	}
}

// checkNotifyURL says what is wrong with a destination URL, or "".
func checkNotifyURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Sprintf("want an http:// or https:// URL, got %s", quote(raw))
	case u.User != nil:
		// The spec is read by every viewer and kept with each revision.
		return "the URL carries a user name or password; put a URL with credentials in a secure param and name it in url_param"
	}
	return ""
}

// validateNotifications checks the spec's notifications against its params.
func (s *Spec) validateNotifications(c *collector) {
	pinned := s.Params
	if pinned == nil {
		pinned = []string{}
	}
	validateNotifications(c, s.Notifications, pinned)
}

// notificationsFile is a file of server-wide notifications.
type notificationsFile struct {
	Notifications []Notification `yaml:"notifications"`
}

// ParseNotifications reads a file of destinations that receive the
// notifications of every app: a mapping with the one key notifications,
// whose list is written as in a spec. It is decoded as strictly as a spec,
// every problem named with its line; its secret_param and url_param may
// name any param.
func ParseNotifications(data []byte, file string) ([]Notification, error) {
	if err := sizeError(int64(len(data)), file); err != nil {
		return nil, err
	}
	d := &decoder{collector: collector{file: file, pos: map[string]pos{}}, given: map[string]bool{}, budget: nodeBudget}
	root, err := parseDocument(data)
	if err != nil {
		d.yamlError(err)
		return nil, d.err()
	}
	var f notificationsFile
	if root == nil || isNull(root) {
		return nil, nil
	}
	if err := countNodes(root, file); err != nil {
		return nil, err
	}
	d.value(root, reflect.ValueOf(&f).Elem(), "")
	applyNotificationDefaults(f.Notifications, d.given)
	if len(d.probs) == 0 {
		validateNotifications(&d.collector, f.Notifications, nil)
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return f.Notifications, nil
}
