package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const markerPrefix = "ERASEME|"

// runErasure writes the workload with one marked customer, erases that
// customer and reports, after each step, which marked values are still in
// the engine's files (read as plain bytes, as someone with the disk would).
func runErasure(c config) error {
	s, dir, err := open(c)
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
		if !c.keep {
			os.RemoveAll(dir)
		}
	}()
	fmt.Printf("erasure experiment: engine %s (%s), N=%d, events=%d, batch=%d\n",
		c.engine, variant(c), c.n, c.events, c.batchSize)
	// The batches that carry events of customer 0 with recognisable values,
	// 10 history entries each and one profile version: three early ones,
	// long compacted or overwritten by the time of the erase, and one two
	// batches before the end, still fresh.
	batches := (c.events + c.batchSize - 1) / c.batchSize
	markerBatches := map[int]bool{2: true, 5: true, 8: true, batches - 2: true}
	fmt.Printf("customer 0 gets 10 history entries and a new profile version in batches 2, 5, 8 and %d of %d:\n", batches-2, batches)
	fmt.Println("40 distinct history values and 4 profile versions, of which 1 is current. The erase follows the last batch.")
	fmt.Println()

	g := newGenerator(c.n, c.dist, c.seed)
	g.marker = func(b int) (int, string) {
		if markerBatches[b] {
			return 10, fmt.Sprintf("%sb%02d|", markerPrefix, b)
		}
		return 0, ""
	}
	write := func(events int) error {
		for done := 0; done < events; {
			b, _ := g.next(min(c.batchSize, events-done))
			if err := s.Apply(b); err != nil {
				return err
			}
			done += len(b.history)
		}
		return nil
	}

	fmt.Println("| step | marked values in the files (copies / distinct) |")
	fmt.Println("|---|---|")
	report := func(step string) {
		fmt.Printf("| %s | %s |\n", step, scanMarkers(dir))
	}

	if err := write(c.events); err != nil {
		return err
	}
	report(fmt.Sprintf("after %d events", c.events))

	prefix, pk := historyPrefix(0), profileKey(0)
	if err := s.Erase(prefix, pk); err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	n, err := s.Newest(prefix, 100)
	found, err2 := s.Profile(pk)
	if err != nil || err2 != nil || n != 0 || found {
		return fmt.Errorf("erase left history %d, profile %v (%v, %v)", n, found, err, err2)
	}
	report("after the delete (committed)")

	if err := s.Reclaim(prefix, pk); err != nil {
		return fmt.Errorf("reclaim: %w", err)
	}
	report("after " + reclaimName(c.engine))

	more := 20 * c.batchSize
	if err := write(more); err != nil {
		return err
	}
	report(fmt.Sprintf("after %d more events", more))

	closed = true
	if err := s.Close(); err != nil {
		return err
	}
	report("after close")
	return nil
}

func reclaimName(engine string) string {
	switch engine {
	case "pebble":
		return "Compact over the two key ranges"
	case "bbolt":
		return "db.Sync (bbolt has no reclaim step)"
	case "sqlite":
		return "wal_checkpoint(TRUNCATE)"
	}
	return "reclaim"
}

// fileKind groups an engine's files for the report.
func fileKind(name string) string {
	switch {
	case strings.HasSuffix(name, ".sst"):
		return "sst"
	case strings.HasSuffix(name, ".blob"):
		return "blob"
	case strings.HasSuffix(name, ".log"):
		return "WAL"
	case strings.HasSuffix(name, "-wal"):
		return "db-wal"
	case strings.HasPrefix(name, "MANIFEST"):
		return "MANIFEST"
	}
	return name
}

// scanMarkers counts the marked values per kind of file: history (h) and
// profile (p) values, copies and distinct ones.
func scanMarkers(dir string) string {
	type count struct {
		hCopies, pCopies int
		h, p             map[string]bool
	}
	kinds := map[string]*count{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for off := 0; ; {
			i := bytes.Index(data[off:], []byte(markerPrefix))
			if i < 0 {
				break
			}
			off += i + len(markerPrefix)
			end := off
			for bars := 0; end < len(data) && end-off < 16 && bars < 2; end++ {
				if data[end] == '|' {
					bars++
				}
			}
			tag := string(data[off:end]) // "b02|ha|" or "b02|p|"
			k := kinds[fileKind(e.Name())]
			if k == nil {
				k = &count{h: map[string]bool{}, p: map[string]bool{}}
				kinds[fileKind(e.Name())] = k
			}
			if strings.Contains(tag, "|p|") {
				k.pCopies++
				k.p[tag] = true
			} else {
				k.hCopies++
				k.h[tag] = true
			}
		}
	}
	if len(kinds) == 0 {
		return "none"
	}
	var names []string
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		k := kinds[n]
		parts = append(parts, fmt.Sprintf("%s: history %d/%d, profile %d/%d", n, k.hCopies, len(k.h), k.pCopies, len(k.p)))
	}
	return strings.Join(parts, "; ")
}
