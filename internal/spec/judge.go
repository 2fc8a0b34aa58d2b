package spec

// JudgeRule compares green with blue statistically on the router's own
// measurements: a Mann-Whitney U test on latency and a test of proportions
// on error rates. A part fails only when the difference is both
// significant at Confidence and larger than its allowance: with a million
// requests a 1 % slower green is surely slower, and still fine.
type JudgeRule struct {
	// Confidence is 1 − the significance level of each test.
	Confidence float64 `yaml:"confidence" json:"confidence"`
	// MinSamples is the fewest requests of green and of blue in the
	// interval for a verdict; fewer is inconclusive.
	MinSamples int `yaml:"min_samples" json:"min_samples"`
	// MaxSlowdown is how many times blue's median latency green's may be.
	MaxSlowdown float64 `yaml:"max_slowdown" json:"max_slowdown"`
	// MaxErrorIncrease is how much higher (a share of requests) green's
	// error rate may be than blue's.
	MaxErrorIncrease float64 `yaml:"max_error_increase" json:"max_error_increase"`
}

// Defaults and bounds of the judge.
const (
	DefaultJudgeConfidence       = 0.99
	DefaultJudgeMinSamples       = 100
	DefaultJudgeMaxSlowdown      = 1.1
	DefaultJudgeMaxErrorIncrease = 0.01
	// MinJudgeSamples is the least min_samples: the normal approximation
	// of the tests needs about 20 values per sample.
	MinJudgeSamples = 20
)

// judgeDefaults fills what a judge rule left out.
func judgeDefaults(j *JudgeRule, path string, given func(string) bool) {
	float := func(p *float64, key string, def float64) {
		if *p == 0 && !given(path+"."+key) {
			*p = def
		}
	}
	float(&j.Confidence, "confidence", DefaultJudgeConfidence)
	float(&j.MaxSlowdown, "max_slowdown", DefaultJudgeMaxSlowdown)
	float(&j.MaxErrorIncrease, "max_error_increase", DefaultJudgeMaxErrorIncrease)
	if j.MinSamples == 0 && !given(path+".min_samples") {
		j.MinSamples = DefaultJudgeMinSamples
	}
}

func validateJudge(c *collector, p string, j *JudgeRule) {
	if !(j.Confidence >= 0.5 && j.Confidence < 1) {
		c.add(p+".confidence", "must be at least 0.5 and below 1 (0.99: each test wrongly fails an identical green 1 time in 100), got %v", j.Confidence)
	}
	if j.MinSamples < MinJudgeSamples {
		c.add(p+".min_samples", "must be at least %d (requests of green and of blue in an interval), got %d", MinJudgeSamples, j.MinSamples)
	}
	if !(j.MaxSlowdown >= 1) {
		c.add(p+".max_slowdown", "must be 1 or more (1.1 lets green's median latency be 10%% above blue's), got %v", j.MaxSlowdown)
	}
	if !(j.MaxErrorIncrease >= 0 && j.MaxErrorIncrease <= 1) {
		c.add(p+".max_error_increase", "must be between 0 and 1 (a share of requests: 0.01 lets green's error rate be 1 point above blue's), got %v", j.MaxErrorIncrease)
	}
}

// JudgeMinSamples is the most any judge rule of the checks asks for (0
// without one): blue needs that many requests in an interval for the
// judge to use it.
func (c Checks) JudgeMinSamples() int {
	n := 0
	for _, r := range c.Rules {
		if r.Judge != nil {
			n = max(n, r.Judge.MinSamples)
		}
	}
	return n
}
