package spec

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
)

// PrometheusRule is a PromQL query whose value must stay within Min and
// Max (at least one of them). Each sample of the result is judged; an
// empty result or NaN is inconclusive, never a pass.
type PrometheusRule struct {
	// Query is PromQL with ${app}, ${fleet}, ${revision} and ${interval}
	// replaced before it is sent (see ExpandQuery).
	Query   string   `yaml:"query" json:"query"`
	Max     *float64 `yaml:"max,omitempty" json:"max,omitempty"`
	Min     *float64 `yaml:"min,omitempty" json:"min,omitempty"`
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// QueryVars are the values of a query's placeholders.
type QueryVars struct {
	App      string // the app
	Fleet    string // green's fleet as the router labels it: its slot, blue or green
	Revision string // green's revision number
	Interval string // checks.interval in seconds, as PromQL writes a range ("10s")
}

// QueryPlaceholders are the names a prometheus rule's query may use.
var QueryPlaceholders = []string{"app", "fleet", "revision", "interval"}

// ExpandQuery replaces ${app}, ${fleet}, ${revision} and ${interval} in q;
// "$$" is a literal "$". Another name is an error naming the known ones.
func ExpandQuery(q string, v QueryVars) (string, error) {
	var unknown string
	out, err := Expand(q, func(name string) (string, bool) {
		switch name {
		case "app":
			return v.App, true
		case "fleet":
			return v.Fleet, true
		case "revision":
			return v.Revision, true
		case "interval":
			return v.Interval, true
		}
		if unknown == "" {
			unknown = name
		}
		return "", false
	})
	if unknown != "" {
		return "", fmt.Errorf("unknown placeholder ${%s}; a query may use %s", unknown, placeholderList())
	}
	return out, err
}

func placeholderList() string {
	names := make([]string, len(QueryPlaceholders))
	for i, n := range QueryPlaceholders {
		names[i] = "${" + n + "}"
	}
	return strings.Join(names, ", ")
}

func validatePrometheusRule(c *collector, p string, r *PrometheusRule) {
	if strings.TrimSpace(r.Query) == "" {
		c.add(p+".query", "is required: a PromQL query, like 'sum(rate(bluegreen_router_fleet_requests_total{app=\"${app}\",fleet=\"${fleet}\",class=\"5xx\"}[1m]))'")
	} else if _, err := ExpandQuery(r.Query, QueryVars{}); err != nil {
		c.add(p+".query", "%s", strings.TrimPrefix(err.Error(), quote(r.Query)+": "))
	}
	if r.Max == nil && r.Min == nil {
		c.add(p, "set max, min, or both: the bounds the query's value must stay within")
	}
	for _, b := range []struct {
		key string
		v   *float64
	}{{"max", r.Max}, {"min", r.Min}} {
		if b.v != nil && (math.IsNaN(*b.v) || math.IsInf(*b.v, 0)) {
			c.add(p+"."+b.key, "must be a finite number, got %v", *b.v)
		}
	}
	if r.Max != nil && r.Min != nil && *r.Min > *r.Max {
		c.add(p+".min", "%v is above max %v: no value could pass", *r.Min, *r.Max)
	}
	positive(c, p+".timeout", r.Timeout, false)
}

func validatePrometheusURL(c *collector, p, u string) {
	if u == "" {
		return
	}
	if err := CheckPrometheusURL(u); err != nil {
		c.add(p, "%v", err)
	}
}

// CheckPrometheusURL says whether u can be a Prometheus's base URL: http or
// https, a host, and no query or fragment (a path prefix is fine, for a
// Prometheus behind a proxy).
func CheckPrometheusURL(u string) error {
	pu, err := url.Parse(u)
	switch {
	case err != nil || !slices.Contains([]string{"http", "https"}, pu.Scheme) || pu.Host == "":
		return fmt.Errorf("want the http:// or https:// address of a Prometheus, like http://127.0.0.1:9090; got %s", quote(u))
	case pu.RawQuery != "" || pu.Fragment != "":
		return errors.New("want the Prometheus's base address, without ?query or #fragment (the rule's query goes to BASE/api/v1/query)")
	}
	return nil
}
