package health

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// This file holds a strict reader of the Prometheus text exposition format
// (0.0.4) for the tests: stricter than Prometheus itself, so that what
// hupd writes is read the same by every scraper.

var (
	reMetricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	reLabelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	reValue      = regexp.MustCompile(`^([+-]?Inf|NaN|[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?)$`)
	validTypes   = map[string]bool{"counter": true, "gauge": true, "histogram": true, "summary": true, "untyped": true}
)

// exposition is what parseExposition read.
type exposition struct {
	// series maps a series, written name{a="x",b="y"} with its labels
	// sorted and values unescaped but quoted with %q, to its value.
	series map[string]float64
	types  map[string]string // family name -> type
	order  []string          // family names as they came
}

type label struct{ name, value string }

// seriesKey writes a series the way exposition.series keys it.
func seriesKey(name string, labels ...label) string {
	if len(labels) == 0 {
		return name
	}
	sort.Slice(labels, func(i, j int) bool { return labels[i].name < labels[j].name })
	parts := make([]string, len(labels))
	for i, l := range labels {
		parts[i] = fmt.Sprintf("%s=%q", l.name, l.value)
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// parseExposition reads text strictly: every line ends with a newline, no
// blank lines or other comments; each family has one HELP and one TYPE
// line, both before its first sample, and its samples are contiguous (no
// family comes back); a sample's name is its family's, or a histogram's
// _bucket, _sum or _count; labels are name="value" with only \\, \" and
// \n as escapes; no series appears twice; counters are not negative;
// histogram buckets are cumulative, end at +Inf and agree with _count.
func parseExposition(text string) (*exposition, error) {
	if text == "" {
		return nil, fmt.Errorf("empty exposition")
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("does not end with a newline")
	}
	e := &exposition{series: map[string]float64{}, types: map[string]string{}}
	helped := map[string]bool{}
	sampled := map[string]bool{}
	cur := "" // the family whose lines come now
	closed := map[string]bool{}
	open := func(name string) error {
		if name != cur {
			if closed[name] {
				return fmt.Errorf("family %s comes back after another", name)
			}
			if cur != "" {
				closed[cur] = true
			}
			cur = name
			e.order = append(e.order, name)
		}
		return nil
	}
	type hist struct {
		les    []float64
		counts []float64
		count  float64
		sum    bool
		hasCnt bool
	}
	hists := map[string]*hist{} // family + labels without le
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		n := i + 1
		fail := func(format string, a ...any) (*exposition, error) {
			return nil, fmt.Errorf("line %d %q: %s", n, line, fmt.Sprintf(format, a...))
		}
		switch {
		case line == "":
			return fail("blank line")
		case strings.HasPrefix(line, "# HELP "):
			name, help, ok := strings.Cut(strings.TrimPrefix(line, "# HELP "), " ")
			if !ok || !reMetricName.MatchString(name) || help == "" {
				return fail("malformed HELP")
			}
			if err := open(name); err != nil {
				return fail("%v", err)
			}
			if helped[name] || sampled[name] {
				return fail("HELP twice or after samples")
			}
			if _, err := unescape(help, false); err != nil {
				return fail("%v", err)
			}
			helped[name] = true
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Split(strings.TrimPrefix(line, "# TYPE "), " ")
			if len(f) != 2 || !reMetricName.MatchString(f[0]) || !validTypes[f[1]] {
				return fail("malformed TYPE")
			}
			if err := open(f[0]); err != nil {
				return fail("%v", err)
			}
			if e.types[f[0]] != "" || sampled[f[0]] {
				return fail("TYPE twice or after samples")
			}
			e.types[f[0]] = f[1]
		case strings.HasPrefix(line, "#"):
			return fail("a comment other than HELP or TYPE")
		default:
			name, labels, value, err := parseSample(line)
			if err != nil {
				return fail("%v", err)
			}
			fam, suffix := name, ""
			if e.types[name] == "" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(name, s); ok && (e.types[base] == "histogram" || e.types[base] == "summary" && s != "_bucket") {
						fam, suffix = base, s
					}
				}
			}
			typ := e.types[fam]
			if typ == "" || !helped[fam] {
				return fail("sample without HELP and TYPE before it")
			}
			if typ == "histogram" && suffix == "" {
				return fail("histogram sample without _bucket, _sum or _count")
			}
			if fam != cur {
				return fail("sample of %s among the lines of %s", fam, cur)
			}
			sampled[fam] = true
			key := seriesKey(name, labels...)
			if _, dup := e.series[key]; dup {
				return fail("duplicate series %s", key)
			}
			e.series[key] = value
			if typ == "counter" && (value < 0 || math.IsNaN(value)) {
				return fail("counter %v", value)
			}
			if typ != "histogram" {
				continue
			}
			var le string
			var rest []label
			for _, l := range labels {
				if l.name == "le" {
					le = l.value
				} else {
					rest = append(rest, l)
				}
			}
			hk := seriesKey(fam, rest...)
			h := hists[hk]
			if h == nil {
				h = &hist{}
				hists[hk] = h
			}
			switch suffix {
			case "_bucket":
				b, err := strconv.ParseFloat(le, 64)
				if le == "" || err != nil || !reValue.MatchString(le) {
					return fail("bucket without a valid le")
				}
				if k := len(h.les); k > 0 && (b <= h.les[k-1] || value < h.counts[k-1]) {
					return fail("buckets not increasing and cumulative")
				}
				h.les, h.counts = append(h.les, b), append(h.counts, value)
			case "_sum":
				if le != "" {
					return fail("le on _sum")
				}
				h.sum = true
			case "_count":
				if le != "" {
					return fail("le on _count")
				}
				h.count, h.hasCnt = value, true
			}
		}
	}
	for fam := range helped {
		if e.types[fam] == "" {
			return nil, fmt.Errorf("family %s has HELP but no TYPE", fam)
		}
	}
	for k, h := range hists {
		if n := len(h.les); n == 0 || !math.IsInf(h.les[n-1], 1) {
			return nil, fmt.Errorf("histogram %s: no +Inf bucket", k)
		}
		if !h.sum || !h.hasCnt || h.counts[len(h.counts)-1] != h.count {
			return nil, fmt.Errorf("histogram %s: _sum or _count missing, or +Inf bucket %v != _count %v", k, h.counts[len(h.counts)-1], h.count)
		}
	}
	return e, nil
}

// parseSample reads name{labels} value.
func parseSample(line string) (string, []label, float64, error) {
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return "", nil, 0, fmt.Errorf("no value")
	}
	name, rest := line[:i], line[i:]
	if !reMetricName.MatchString(name) {
		return "", nil, 0, fmt.Errorf("bad metric name %q", name)
	}
	var labels []label
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		seen := map[string]bool{}
		for {
			eq := strings.IndexByte(rest, '=')
			if eq <= 0 {
				return "", nil, 0, fmt.Errorf("bad label list")
			}
			ln := rest[:eq]
			if !reLabelName.MatchString(ln) || strings.HasPrefix(ln, "__") || seen[ln] {
				return "", nil, 0, fmt.Errorf("bad or repeated label name %q", ln)
			}
			seen[ln] = true
			rest = rest[eq+1:]
			if !strings.HasPrefix(rest, `"`) {
				return "", nil, 0, fmt.Errorf("label value not quoted")
			}
			end := -1
			for j := 1; j < len(rest); j++ {
				if rest[j] == '\\' {
					j++
					continue
				}
				if rest[j] == '"' {
					end = j
					break
				}
			}
			if end < 0 {
				return "", nil, 0, fmt.Errorf("unterminated label value")
			}
			v, err := unescape(rest[1:end], true)
			if err != nil {
				return "", nil, 0, err
			}
			labels = append(labels, label{ln, v})
			rest = rest[end+1:]
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
				continue
			}
			if !strings.HasPrefix(rest, "}") {
				return "", nil, 0, fmt.Errorf("label list not closed")
			}
			rest = rest[1:]
			break
		}
	}
	if !strings.HasPrefix(rest, " ") {
		return "", nil, 0, fmt.Errorf("no space before the value")
	}
	f := strings.Split(rest[1:], " ")
	if len(f) != 1 || !reValue.MatchString(f[0]) {
		return "", nil, 0, fmt.Errorf("bad value %q (or a timestamp)", rest[1:])
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return "", nil, 0, err
	}
	return name, labels, v, nil
}

// unescape undoes \\ and \n (and \" in a label value); any other escape
// is an error.
func unescape(s string, label bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' && label {
			return "", fmt.Errorf("unescaped quote in %q", s)
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("trailing backslash in %q", s)
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case '"':
			if !label {
				return "", fmt.Errorf(`\" in HELP text %q`, s)
			}
			b.WriteByte('"')
		default:
			return "", fmt.Errorf("unknown escape \\%c in %q", s[i], s)
		}
	}
	return b.String(), nil
}

// TestParserRejects makes sure the strict reader catches what it must.
func TestParserRejects(t *testing.T) {
	const head = "# HELP a_total A.\n# TYPE a_total counter\n"
	for name, text := range map[string]string{
		"no final newline":      head + "a_total 1",
		"sample before TYPE":    "# HELP a_total A.\na_total 1\n# TYPE a_total counter\n",
		"sample without HELP":   "# TYPE a_total counter\na_total 1\n",
		"unknown family":        head + "b 1\n",
		"duplicate series":      head + "a_total{x=\"1\"} 1\na_total{x=\"1\"} 2\n",
		"family comes back":     head + "a_total 1\n# HELP b B.\n# TYPE b gauge\nb 1\na_total{x=\"2\"} 2\n",
		"bad escape":            head + "a_total{x=\"\\t\"} 1\n",
		"unescaped quote":       head + "a_total{x=\"a\"b\"} 1\n",
		"trailing comma":        head + "a_total{x=\"1\",} 1\n",
		"repeated label":        head + "a_total{x=\"1\",x=\"2\"} 1\n",
		"negative counter":      head + "a_total -1\n",
		"bad value":             head + "a_total one\n",
		"timestamp":             head + "a_total 1 1700000000000\n",
		"blank line":            head + "\na_total 1\n",
		"other comment":         head + "# hello\na_total 1\n",
		"bad type":              "# HELP a A.\n# TYPE a meter\na 1\n",
		"TYPE twice":            head + "# TYPE a_total counter\na_total 1\n",
		"histogram without inf": "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
		"histogram not cumulative": "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n" +
			"h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
		"histogram count differs": "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
	} {
		if _, err := parseExposition(text); err == nil {
			t.Errorf("%s: accepted:\n%s", name, text)
		}
	}
	ok := head + "a_total{x=\"q\\\"\\\\\\n\"} 1\n# HELP h H \\\\ \\n.\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n"
	e, err := parseExposition(ok)
	if err != nil {
		t.Fatalf("valid exposition refused: %v", err)
	}
	if v, found := e.series[seriesKey("a_total", label{"x", "q\"\\\n"})]; !found || v != 1 {
		t.Errorf("escaped label value not read back: %v", e.series)
	}
}
