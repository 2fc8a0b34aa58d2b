package spec

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a spec, and where.
type Problem struct {
	File    string
	Line    int // 1-based; 0 when the problem has no place in the file (a missing key)
	Column  int
	Path    string // key path such as strategy.steps[2].weight; empty for the whole file
	Message string
}

// String formats the problem as file:line:column: path: message, leaving
// out what is unknown (a spec built in Go has no file).
func (p Problem) String() string {
	var parts []string
	if p.File != "" {
		at := p.File
		if p.Line > 0 {
			at += ":" + strconv.Itoa(p.Line)
			if p.Column > 0 {
				at += ":" + strconv.Itoa(p.Column)
			}
		}
		parts = append(parts, at)
	}
	if p.Path != "" {
		parts = append(parts, p.Path)
	}
	return strings.Join(append(parts, p.Message), ": ")
}

// Errors is every problem found in one spec, in file order.
type Errors struct {
	Problems []Problem
	// tooLarge marks a spec over MaxBytes or MaxNodes (see ErrTooLarge).
	tooLarge bool
}

// Error prints one problem per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Problem returns an *Errors holding one problem at path, placed in the
// file like those Validate finds: for rules that need more than the file,
// such as which users the server lets an app run as.
func (s *Spec) Problem(path, format string, args ...any) error {
	c := &collector{file: s.file, pos: s.pos}
	c.add(path, format, args...)
	return c.err()
}

// pos is a place in the file.
type pos struct{ line, col int }

// collector gathers problems and knows where each key path sits in the file.
type collector struct {
	file  string
	pos   map[string]pos
	probs []Problem
}

// at records a problem at an explicit place.
func (c *collector) at(p pos, path, format string, args ...any) {
	c.probs = append(c.probs, Problem{File: c.file, Line: p.line, Column: p.col, Path: path, Message: fmt.Sprintf(format, args...)})
}

// add records a problem at path, placed at the path's value or, when the key
// is absent, at its nearest parent present in the file.
func (c *collector) add(path, format string, args ...any) {
	c.at(c.lookup(path), path, format, args...)
}

func (c *collector) lookup(path string) pos {
	for p := path; ; p = parentPath(p) {
		if at, ok := c.pos[p]; ok {
			return at
		}
		if p == "" {
			return pos{}
		}
	}
}

// parentPath drops the last element of a key path: a.b[2] → a.b → a → "".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// maxProblems bounds a report: past this many, the rest are counted, so that
// a generated file with thousands of bad entries gives a readable answer.
const maxProblems = 50

// err returns the problems sorted by place, or nil.
func (c *collector) err() error {
	if len(c.probs) == 0 {
		return nil
	}
	sort.SliceStable(c.probs, func(i, j int) bool {
		a, b := c.probs[i], c.probs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	if n := len(c.probs); n > maxProblems {
		last := c.probs[maxProblems-1]
		c.probs = append(c.probs[:maxProblems:maxProblems], Problem{File: last.File, Line: last.Line, Column: last.Column,
			Message: fmt.Sprintf("and %d more problems", n-maxProblems)})
	}
	return &Errors{Problems: c.probs}
}

// suggest returns ` (did you mean "x"?)` for the closest of choices, or "".
func suggest(got string, choices []string) string {
	best, bestDist := "", 1<<30
	norm := normalizeKey(got)
	for _, c := range choices {
		if normalizeKey(c) == norm {
			return fmt.Sprintf(" (did you mean %q?)", c)
		}
		if d := editDistance(strings.ToLower(got), strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	// A distance above a third of the word is more noise than help.
	if best != "" && bestDist <= max(1, len(best)/3) {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// normalizeKey folds camelCase, kebab-case and snake_case spellings together.
func normalizeKey(s string) string {
	return strings.NewReplacer("_", "", "-", "", ".", "").Replace(strings.ToLower(s))
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30 // long keys are never typos of ours; keeps fuzzing cheap
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
