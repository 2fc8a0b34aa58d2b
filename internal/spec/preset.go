package spec

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Presets lists the canonical preset names, the ones CodeDeploy predefines.
// Their ECS- and Lambda-prefixed spellings, with or without the
// "CodeDeployDefault." prefix, are accepted too, and so is any name of the
// same pattern (Canary25Percent20Minutes, Linear20PercentEvery5Minutes).
var Presets = []string{
	"AllAtOnce",
	"Canary10Percent5Minutes",
	"Canary10Percent10Minutes",
	"Canary10Percent15Minutes",
	"Canary10Percent30Minutes",
	"Linear10PercentEvery1Minute",
	"Linear10PercentEvery2Minutes",
	"Linear10PercentEvery3Minutes",
	"Linear10PercentEvery10Minutes",
}

var presetPattern = regexp.MustCompile(`^(?:CodeDeployDefault\.)?(?:ECS|Lambda)?(?:(AllAtOnce)|(Canary)(\d{1,2})Percent(\d{1,4})Minutes?|(Linear)(\d{1,2})PercentEvery(\d{1,4})Minutes?)$`)

// maxPresetMinutes bounds a preset's interval to one day, the longest a
// pause of a step can sensibly be meant to last.
const maxPresetMinutes = 24 * 60

// ExpandPreset returns the steps a preset name stands for:
//
//	AllAtOnce                    → 100
//	Canary<P>Percent<M>Minutes   → P, pause M minutes, 100
//	Linear<P>PercentEvery<M>Minutes → P, pause M, 2P, pause M, …, 100
func ExpandPreset(name string) ([]Step, error) {
	m := presetPattern.FindStringSubmatch(name)
	if m == nil {
		return nil, fmt.Errorf("unknown preset %s%s; known presets are %s, or use steps", quote(name), suggest(name, Presets), strings.Join(Presets, ", "))
	}
	if m[1] != "" {
		return []Step{weightStep(100, 0)}, nil
	}
	kind, pct, mins := m[2]+m[5], m[3]+m[6], m[4]+m[7]
	p, _ := strconv.Atoi(pct)
	minutes, _ := strconv.Atoi(mins)
	if p < 1 || p > 99 {
		return nil, fmt.Errorf("preset %s: the percentage must be between 1 and 99", quote(name))
	}
	if minutes < 1 || minutes > maxPresetMinutes {
		return nil, fmt.Errorf("preset %s: the interval must be between 1 and %d minutes", quote(name), maxPresetMinutes)
	}
	pause := time.Duration(minutes) * time.Minute
	if kind == "Canary" {
		return []Step{weightStep(p, pause), weightStep(100, 0)}, nil
	}
	var steps []Step
	for w := p; w < 100; w += p {
		steps = append(steps, weightStep(w, pause))
	}
	return append(steps, weightStep(100, 0)), nil
}

func weightStep(w int, pause time.Duration) Step {
	s := Step{Weight: &w}
	if pause > 0 {
		s.Pause = &Pause{Duration: Duration(pause)}
	}
	return s
}
