package spec

import (
	"slices"
	"strings"
	"testing"
)

func TestNotificationsParse(t *testing.T) {
	s, err := Parse([]byte(base+`params: [/shop/HOOK_SECRET, /shop/SLACK_URL]
notifications:
  - url: https://hooks.example.com/deploys
    events: [rolled_back, failed]
    secret_param: /shop/HOOK_SECRET
  - url_param: /shop/SLACK_URL
    format: slack
`), "bluegreen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ns := s.Notifications
	if len(ns) != 2 {
		t.Fatalf("notifications: %+v", ns)
	}
	if ns[0].Format != NotifyJSON || !slices.Equal(ns[0].Events, []string{"rolled_back", "failed"}) || ns[0].SecretParam != "/shop/HOOK_SECRET" {
		t.Errorf("first: %+v", ns[0])
	}
	if ns[1].Format != NotifySlack || !slices.Equal(ns[1].Events, NotificationEvents) || ns[1].URLParam != "/shop/SLACK_URL" {
		t.Errorf("second (every event by default): %+v", ns[1])
	}
	if !ns[0].Wants(NotifyRolledBack) || ns[0].Wants(NotifyStarted) {
		t.Error("Wants")
	}
	// The effective spec says it all, and parses back the same.
	out, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out, "printed")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !slices.EqualFunc(again.Notifications, ns, func(a, b Notification) bool {
		return a.URL == b.URL && a.URLParam == b.URLParam && a.Format == b.Format && a.SecretParam == b.SecretParam && slices.Equal(a.Events, b.Events)
	}) {
		t.Errorf("printed and parsed again: %+v", again.Notifications)
	}
	// A spec without notifications prints none.
	plain, _ := Parse([]byte(base), "bluegreen.yaml")
	if out, _ := plain.Marshal(); strings.Contains(string(out), "notifications") {
		t.Errorf("a spec without notifications prints them:\n%s", out)
	}
}

func TestNotificationProblems(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"no url", "notifications: [{format: json}]\n", "notifications[0]: url is required"},
		{"both", "params: [/shop/U]\nnotifications: [{url: 'https://a.example', url_param: /shop/U}]\n", "set url or url_param, not both"},
		{"scheme", "notifications: [{url: 'ftp://a.example/x'}]\n", `notifications[0].url: want an http:// or https:// URL, got "ftp://a.example/x"`},
		{"no host", "notifications: [{url: 'https:///x'}]\n", "want an http:// or https:// URL"},
		{"credentials", "notifications: [{url: 'https://u:p@a.example/x'}]\n", "put a URL with credentials in a secure param"},
		{"unknown event", "notifications: [{url: 'https://a.example', events: [rolledback]}]\n", `notifications[0].events[0]: unknown event "rolledback" (did you mean "rolled_back"?)`},
		{"twice", "notifications: [{url: 'https://a.example', events: [live, live]}]\n", `notifications[0].events[1]: event "live" is listed twice`},
		{"format", "notifications: [{url: 'https://a.example', format: teams}]\n", `notifications[0].format: must be json or slack, got "teams"`},
		{"empty format", "notifications: [{url: 'https://a.example', format: ''}]\n", `notifications[0].format: must be json or slack`},
		{"secret not pinned", "notifications: [{url: 'https://a.example', secret_param: /shop/S}]\n", `notifications[0].secret_param: "/shop/S" is not one of the spec's params`},
		{"url param not pinned", "notifications: [{url_param: /shop/U}]\n", `notifications[0].url_param: "/shop/U" is not one of the spec's params`},
		{"bad param name", "notifications: [{url: 'https://a.example', secret_param: shop}]\n", `bad param name "shop"`},
		{"unknown key", "notifications: [{url: 'https://a.example', secret: x}]\n", `notifications[0].secret: unknown key`},
		{"too many", "notifications: [" + strings.Repeat("{url: 'https://a.example'}, ", MaxNotifications) + "{url: 'https://a.example'}]\n", "21 destinations; at most 20"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(base+tc.yaml), "bluegreen.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant a problem with %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "bluegreen.yaml:") {
				t.Errorf("the problem has no place: %v", err)
			}
		})
	}
}

func TestParseServerNotifications(t *testing.T) {
	ns, err := ParseNotifications([]byte(`# every app's deployments
notifications:
  - url: https://chat.example.com/hooks/deploys
    format: slack
    events: [rolling_back, failed]
  - url: http://10.0.0.5:9000/bluegreen
    secret_param: /ops/WEBHOOK_SECRET
`), "notifications.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || ns[1].SecretParam != "/ops/WEBHOOK_SECRET" || ns[1].Format != NotifyJSON || len(ns[1].Events) != len(NotificationEvents) {
		t.Fatalf("%+v", ns)
	}
	if ns, err := ParseNotifications(nil, "empty.yaml"); err != nil || ns != nil {
		t.Fatalf("an empty file: %v %v", ns, err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"notifications:\n  - url: https://a.example\n    evnts: [live]\n", `notifications.yaml:3:5: notifications[0].evnts: unknown key (did you mean "events"?)`},
		{"notifications:\n  - url: nope\n", `notifications.yaml:2:10: notifications[0].url: want an http:// or https:// URL, got "nope"`},
		{"app: shop\n", `notifications.yaml:1:1: app: unknown key`},
		{"notifications: [x\n", `notifications.yaml:1: bad YAML`},
	} {
		_, err := ParseNotifications([]byte(tc.yaml), "notifications.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
