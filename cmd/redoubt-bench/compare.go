package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// compare prints one table from the tables of an interleaved run: dir holds
// NAME.ROUND.md, each the output of one run of this tool against the server
// NAME (and, if sidebyside.sh wrote it, a file servers naming them in
// order). Each figure is the median over the rounds with its range, and
// every server after the first gets a column with the first's advantage
// over it (how many times faster, or smaller; below 1 where the first is
// behind).
// This machine's figures drift between runs an hour apart, so only ratios
// from one interleaved run mean anything.
func compare(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no NAME.ROUND.md tables in %s", dir)
	}
	slices.Sort(files)
	// The servers in the order sidebyside.sh was given them, so the ratio
	// columns compare the first with each of the others.
	if b, err := os.ReadFile(filepath.Join(dir, "servers")); err == nil {
		order := strings.Fields(string(b))
		slices.SortStableFunc(files, func(a, b string) int {
			na, _, _ := strings.Cut(filepath.Base(a), ".")
			nb, _, _ := strings.Cut(filepath.Base(b), ".")
			return slices.Index(order, na) - slices.Index(order, nb)
		})
	}
	type key struct{ scenario, metric string }
	var names []string
	var keys []key
	values := map[string]map[key][][]float64{} // name -> figure -> one per round
	for _, f := range files {
		name, _, _ := strings.Cut(filepath.Base(f), ".")
		if values[name] == nil {
			values[name] = map[key][][]float64{}
			names = append(names, name)
		}
		rows, err := readTable(f)
		if err != nil {
			return err
		}
		for _, r := range rows {
			k := key{r.scenario, r.metric}
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
			values[name][k] = append(values[name][k], numbers(r.value))
		}
	}
	header := []string{"scenario", "metric"}
	header = append(header, names...)
	for _, n := range names[1:] {
		header = append(header, names[0]+" ahead of "+n)
	}
	fmt.Println("| " + strings.Join(header, " | ") + " |")
	fmt.Println(strings.Repeat("|---", len(header)) + "|")
	for _, k := range keys {
		cells := []string{k.scenario, k.metric}
		medians := make([][]float64, len(names))
		for i, n := range names {
			medians[i] = median(values[n][k])
			cells = append(cells, spread(values[n][k], medians[i]))
		}
		higherBetter := strings.Contains(k.metric, "/s")
		for i := range names[1:] {
			cells = append(cells, ratio(medians[0], medians[i+1], higherBetter))
		}
		fmt.Println("| " + strings.Join(cells, " | ") + " |")
	}
	return nil
}

// readTable reads the rows of a table printTable wrote.
func readTable(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []row
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cells := strings.Split(strings.Trim(sc.Text(), "| "), "|")
		if len(cells) != 3 || strings.HasPrefix(cells[0], "--") || strings.TrimSpace(cells[0]) == "scenario" {
			continue
		}
		rows = append(rows, row{strings.TrimSpace(cells[0]), strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])})
	}
	return rows, sc.Err()
}

// numbers reads "1.5 / 3 / 6.5 ms" as [1.5 3 6.5]; nil if it is not a figure.
func numbers(value string) []float64 {
	var out []float64
	for _, part := range strings.Split(value, "/") {
		f := strings.Fields(part)
		if len(f) == 0 {
			return nil
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil
		}
		out = append(out, v)
	}
	return out
}

// median is the element-wise median of the rounds that produced a figure.
func median(rounds [][]float64) []float64 {
	var ok [][]float64
	for _, r := range rounds {
		if r != nil && (len(ok) == 0 || len(r) == len(ok[0])) {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	out := make([]float64, len(ok[0]))
	for i := range out {
		col := make([]float64, len(ok))
		for j, r := range ok {
			col[j] = r[i]
		}
		slices.Sort(col)
		out[i] = col[len(col)/2]
		if len(col)%2 == 0 {
			out[i] = (col[len(col)/2-1] + col[len(col)/2]) / 2
		}
	}
	return out
}

// spread shows a median and, for a single figure, the range of the rounds.
func spread(rounds [][]float64, med []float64) string {
	if len(rounds) == 0 {
		return "-"
	}
	if med == nil {
		return "failed"
	}
	parts := make([]string, len(med))
	for i, v := range med {
		parts[i] = figure(v)
	}
	s := strings.Join(parts, " / ")
	if len(med) == 1 && len(rounds) > 1 {
		lo, hi := med[0], med[0]
		for _, r := range rounds {
			if len(r) == 1 {
				lo, hi = min(lo, r[0]), max(hi, r[0])
			}
		}
		s += " (" + figure(lo) + "-" + figure(hi) + ")"
	}
	if len(rounds) > len(slices.DeleteFunc(slices.Clone(rounds), func(r []float64) bool { return r == nil })) {
		s += " (some rounds failed)"
	}
	return s
}

func ratio(first, other []float64, higherBetter bool) string {
	if first == nil || other == nil || len(first) != len(other) {
		return "-"
	}
	parts := make([]string, len(first))
	for i := range first {
		a, b := first[i], other[i]
		if higherBetter {
			a, b = b, a
		}
		if a == 0 {
			parts[i] = "-"
			continue
		}
		parts[i] = strconv.FormatFloat(b/a, 'g', 3, 64)
	}
	return strings.Join(parts, " / ") + "x"
}

// figure shows four significant digits, and no exponent.
func figure(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
