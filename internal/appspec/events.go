package appspec

// eventInfo is what bluegreen knows of one CodeDeploy lifecycle event.
type eventInfo struct {
	// Hook is the bluegreen hook event its scripts map to; "" for the
	// events CodeDeploy runs itself, which take no scripts.
	Hook string
}

// events are CodeDeploy's lifecycle events of every compute platform, by
// name. The EC2/on-premises events take scripts; AfterAllowTestTraffic
// exists only for ECS (and takes a Lambda function there), but bluegreen
// has the event, so a script under it maps like the others.
var events = map[string]eventInfo{
	"ApplicationStop":       {Hook: "application_stop"},
	"BeforeInstall":         {Hook: "before_install"},
	"AfterInstall":          {Hook: "after_install"},
	"ApplicationStart":      {Hook: "application_start"},
	"ValidateService":       {Hook: "validate_service"},
	"AfterAllowTestTraffic": {Hook: "after_allow_test_traffic"},
	"BeforeAllowTraffic":    {Hook: "before_allow_traffic"},
	"AfterAllowTraffic":     {Hook: "after_allow_traffic"},
	"BeforeBlockTraffic":    {Hook: "before_block_traffic"},
	"AfterBlockTraffic":     {Hook: "after_block_traffic"},
	// CodeDeploy's own steps: no scripts run there.
	"Start":          {},
	"DownloadBundle": {},
	"Install":        {},
	"TestTraffic":    {},
	"AllowTraffic":   {},
	"BlockTraffic":   {},
	"End":            {},
}

// scriptEvents are the events that take scripts, in CodeDeploy's order.
var scriptEvents = []string{
	"ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService",
	"AfterAllowTestTraffic", "BeforeAllowTraffic", "AfterAllowTraffic", "BeforeBlockTraffic", "AfterBlockTraffic",
}

// HookEvent returns the bluegreen hook event a CodeDeploy lifecycle event
// maps to, or "" when it has none.
func HookEvent(codedeploy string) string { return events[codedeploy].Hook }
