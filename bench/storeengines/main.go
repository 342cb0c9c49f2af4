// Command storeengines measures the profile consumer's write and read
// pattern on the pure-Go embedded engines nudge could use: Pebble v2, bbolt
// and SQLite (modernc). See README.md for the workload and the results.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

type config struct {
	engine     string
	dir        string
	n          uint64
	events     int
	batchSize  int
	dist       string
	sync       bool
	maxDur     time.Duration
	getRate    int
	scanRate   int
	scanN      int
	idleReads  int
	cacheMiB   int64
	seed       uint64
	keep       bool
	erasure    bool
	progress   time.Duration
	preload    int
	verbose    bool
	pebble     pebbleConfig
	bolt       boltConfig
	sqlite     sqliteConfig
	sqliteSync string
}

func main() {
	var c config
	var memtableMiB uint64
	flag.StringVar(&c.engine, "engine", "pebble", "pebble, bbolt or sqlite")
	flag.StringVar(&c.dir, "dir", "/tmp/storeengines-data", "parent of the data directory (wiped at start)")
	flag.Uint64Var(&c.n, "n", 1_000_000, "number of customers (profiles)")
	flag.IntVar(&c.events, "events", 4_000_000, "events to apply")
	flag.IntVar(&c.batchSize, "batch", 5000, "events per committed batch")
	flag.StringVar(&c.dist, "dist", "uniform", "customer distribution: uniform or zipf")
	flag.BoolVar(&c.sync, "sync", false, "fsync every batch (SQLite: synchronous=FULL instead of NORMAL)")
	flag.DurationVar(&c.maxDur, "maxdur", 170*time.Second, "stop writing after this long and report the rate reached")
	flag.IntVar(&c.getRate, "getrate", 200, "profile gets per second during writes")
	flag.IntVar(&c.scanRate, "scanrate", 200, "newest-history scans per second during writes")
	flag.IntVar(&c.scanN, "scann", 50, "entries per history scan")
	flag.IntVar(&c.idleReads, "idlereads", 2000, "gets and scans each, back to back, after the writes")
	flag.Int64Var(&c.cacheMiB, "cache", 256, "engine cache in MiB (Pebble block cache, SQLite writer page cache)")
	flag.Uint64Var(&c.seed, "seed", 1, "workload seed")
	flag.BoolVar(&c.keep, "keep", false, "keep the data directory after the run")
	flag.BoolVar(&c.erasure, "erasure", false, "run the erasure experiment instead of the throughput run")
	flag.IntVar(&c.preload, "preload", 2_000_000, "bulk-load a profile for every customer and this many history entries before the timed phase (-1: no preload)")
	flag.DurationVar(&c.progress, "progress", 10*time.Second, "progress line interval")
	flag.Uint64Var(&memtableMiB, "pebble-memtable", 64, "Pebble MemTableSize in MiB")
	flag.BoolVar(&c.pebble.compression, "pebble-snappy", false, "Pebble: Snappy block compression (default none: values are encrypted)")
	flag.BoolVar(&c.pebble.valueSep, "pebble-valsep", false, "Pebble: experimental value separation into blob files")
	flag.IntVar(&c.pebble.compactions, "pebble-compactions", 0, "Pebble: upper bound of concurrent compactions (0: Pebble's default, 1)")
	flag.BoolVar(&c.verbose, "v", false, "print the engine's full metrics at the end (Pebble)")
	flag.Float64Var(&c.bolt.fillPercent, "bolt-fill", 0.5, "bbolt bucket FillPercent")
	flag.StringVar(&c.sqliteSync, "sqlite-synchronous", "", "override SQLite synchronous (OFF, NORMAL, FULL)")
	flag.IntVar(&c.sqlite.readCacheKiB, "sqlite-read-cache", 32<<10, "SQLite page cache per reader connection, KiB (2 readers)")
	flag.IntVar(&c.sqlite.pageSize, "sqlite-page-size", 8192, "SQLite page_size for a new database (8192 keeps a 1.2 KB profile row off overflow pages; 0: SQLite default 4096)")
	flag.IntVar(&c.sqlite.autoCkpt, "sqlite-autocheckpoint", 0, "SQLite wal_autocheckpoint in pages (0: 1000)")
	flag.Int64Var(&c.sqlite.mmapBytes, "sqlite-mmap", 0, "SQLite mmap_size in bytes (0: off)")
	flag.BoolVar(&c.sqlite.secureDelete, "sqlite-secure-delete", false, "SQLite: secure_delete on for every write, not only the erase")
	flag.Parse()

	c.pebble.sync = c.sync
	c.pebble.cacheBytes = c.cacheMiB << 20
	c.pebble.memtable = memtableMiB << 20
	c.bolt.sync = c.sync
	c.sqlite.cacheKiB = int(c.cacheMiB << 10)
	c.sqlite.synchronous = "NORMAL"
	if c.sync {
		c.sqlite.synchronous = "FULL"
	}
	if c.sqliteSync != "" {
		c.sqlite.synchronous = strings.ToUpper(c.sqliteSync)
	}

	run := runThroughput
	if c.erasure {
		run = runErasure
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "storeengines:", err)
		os.Exit(1)
	}
}

// open wipes the engine's data directory and opens the engine there.
func open(c config) (store, string, error) {
	dir := filepath.Join(c.dir, c.engine)
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	var s store
	var err error
	switch c.engine {
	case "pebble":
		s, err = openPebble(dir, c.pebble)
	case "bbolt":
		s, err = openBolt(filepath.Join(dir, "nudge.db"), c.bolt)
	case "sqlite":
		s, err = openSQLite(filepath.Join(dir, "nudge.db"), c.sqlite)
	default:
		err = fmt.Errorf("unknown engine %q", c.engine)
	}
	return s, dir, err
}

// variant names the engine configuration for the result table.
func variant(c config) string {
	switch c.engine {
	case "pebble":
		v := "Sync=false"
		if c.sync {
			v = "Sync=true"
		}
		if c.pebble.valueSep {
			v += ", value separation"
		}
		if c.pebble.compression {
			v += ", snappy"
		}
		if c.pebble.compactions > 0 {
			v += fmt.Sprintf(", compactions 1-%d", c.pebble.compactions)
		}
		return v
	case "bbolt":
		v := "NoSync"
		if c.sync {
			v = "fsync per tx"
		}
		return fmt.Sprintf("%s, fill %.2f", v, c.bolt.fillPercent)
	case "sqlite":
		v := "WAL, synchronous=" + c.sqlite.synchronous
		if c.sqlite.pageSize > 0 {
			v += fmt.Sprintf(", page %d", c.sqlite.pageSize)
		}
		if c.sqlite.autoCkpt > 0 {
			v += fmt.Sprintf(", autocheckpoint %d", c.sqlite.autoCkpt)
		}
		if c.sqlite.mmapBytes > 0 {
			v += ", mmap"
		}
		return v
	}
	return ""
}

type batchMark struct {
	at     time.Duration // since start, at commit
	events int
}

func runThroughput(c config) error {
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
	fmt.Printf("engine %s (%s), N=%d, events=%d, batch=%d, dist=%s, cores=%d, %s\n",
		c.engine, variant(c), c.n, c.events, c.batchSize, c.dist, runtime.NumCPU(), runtime.Version())

	g := newGenerator(c.n, c.dist, c.seed)
	if c.preload >= 0 {
		t := time.Now()
		if err := g.preload(c.preload, 10_000, s.Apply); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
		loaded := time.Since(t)
		t = time.Now()
		if err := s.Settle(60 * time.Second); err != nil {
			return fmt.Errorf("settle: %w", err)
		}
		g.markAll()
		alloc, _ := diskUsage(dir)
		fmt.Printf("preload: %d profiles and %d history entries in %.1fs, settled in %.1fs, disk %s\n",
			c.n-1, c.preload, loaded.Seconds(), time.Since(t).Seconds(), gib(alloc))
		// The peak memory reported is the timed phase's, not the preload's.
		debug.FreeOSMemory()
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	}
	io0, cpu0, busy0 := procIO(), cpuTime(), machineBusy()
	start := time.Now()

	// Readers: one goroutine for profile gets, one for history scans, each
	// at a fixed rate, on customers whose profile is committed. Latency is
	// the service time of each call.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var gets, scans latencies
	reader := func(rate int, l *latencies, op func(uint64) (int, error), seed uint64) {
		defer wg.Done()
		if rate <= 0 {
			return
		}
		rng := rand.New(rand.NewPCG(seed, seed))
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			cust, ok := uint64(0), false
			for range 64 {
				if cust = 1 + rng.Uint64N(c.n-1); g.isWritten(cust) {
					ok = true
					break
				}
			}
			if !ok {
				continue
			}
			t := time.Now()
			n, err := op(cust)
			l.d = append(l.d, time.Since(t))
			l.attempts++
			l.found += n
			if err != nil {
				l.errs++
			}
		}
	}
	getOp := func(cust uint64) (int, error) {
		found, err := s.Profile(profileKey(cust))
		if found {
			return 1, err
		}
		return 0, err
	}
	scanOp := func(cust uint64) (int, error) { return s.Newest(historyPrefix(cust), c.scanN) }
	wg.Add(2)
	go reader(c.getRate, &gets, getOp, c.seed+100)
	go reader(c.scanRate, &scans, scanOp, c.seed+200)

	// The consumer.
	var marks []batchMark
	var logical int64
	var commitTime time.Duration
	applied, stoppedEarly := 0, false
	lastProgress, lastEvents := time.Duration(0), 0
	var windows []float64
	for applied < c.events {
		if time.Since(start) > c.maxDur {
			stoppedEarly = true
			break
		}
		b, custs := g.next(min(c.batchSize, c.events-applied))
		logical += b.logicalBytes()
		t := time.Now()
		if err := s.Apply(b); err != nil {
			close(stop)
			wg.Wait()
			return fmt.Errorf("apply batch %d: %w", len(marks), err)
		}
		commitTime += time.Since(t)
		g.markWritten(custs)
		applied += len(b.history)
		el := time.Since(start)
		marks = append(marks, batchMark{el, applied})
		if el-lastProgress >= c.progress {
			rate := float64(applied-lastEvents) / (el - lastProgress).Seconds()
			windows = append(windows, rate)
			alloc, _ := diskUsage(dir)
			st := procStatus()
			fmt.Printf("  %5.0fs %9d events %8.0f ev/s  disk %s  rss %s\n",
				el.Seconds(), applied, rate, mib(alloc), mib(st["VmRSS"]))
			lastProgress, lastEvents = el, applied
		}
	}
	writeDur := time.Since(start)
	close(stop)
	wg.Wait()
	io1, cpu1, busy1 := procIO(), cpuTime(), machineBusy()

	// After the writes: reads on a quiet engine.
	var idleGets, idleScans latencies
	rng := rand.New(rand.NewPCG(c.seed+300, 0))
	for range c.idleReads {
		for _, x := range []struct {
			l  *latencies
			op func(uint64) (int, error)
		}{{&idleGets, getOp}, {&idleScans, scanOp}} {
			cust := 1 + rng.Uint64N(c.n-1)
			if !g.isWritten(cust) {
				continue
			}
			t := time.Now()
			n, err := x.op(cust)
			x.l.d = append(x.l.d, time.Since(t))
			x.l.attempts++
			x.l.found += n
			if err != nil {
				x.l.errs++
			}
		}
	}

	mem := procStatus()
	var rt runtime.MemStats
	runtime.ReadMemStats(&rt)
	allocOpen, _ := diskUsage(dir)
	engineStats := s.Stats()
	if m, ok := s.(interface{ Metrics() string }); ok && c.verbose {
		fmt.Println(m.Metrics())
	}
	tc := time.Now()
	closed = true
	if err := s.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	closeDur := time.Since(tc)
	allocClosed, apparentClosed := diskUsage(dir)

	// Rates: whole run, and the last quarter of the events applied.
	overall := float64(applied) / writeDur.Seconds()
	last := overall
	if len(marks) > 4 {
		fin := marks[len(marks)-1]
		for _, m := range marks {
			if m.events >= applied*3/4 {
				last = float64(fin.events-m.events) / (fin.at - m.at).Seconds()
				break
			}
		}
	}
	minWin := last
	if len(windows) > 0 {
		minWin = windows[0]
		for _, w := range windows {
			minWin = min(minWin, w)
		}
	}
	written := io1["write_bytes"] - io0["write_bytes"] - (io1["cancelled_write_bytes"] - io0["cancelled_write_bytes"])
	wchar := io1["wchar"] - io0["wchar"]
	cpu := cpu1 - cpu0

	fmt.Println()
	fmt.Printf("result %s (%s)\n", c.engine, variant(c))
	status := "completed"
	if stoppedEarly {
		status = fmt.Sprintf("STOPPED at the %s bound", c.maxDur)
	}
	fmt.Printf("  events applied        %d in %.1fs (%s), %d batches\n", applied, writeDur.Seconds(), status, len(marks))
	fmt.Printf("  events/s overall      %.0f\n", overall)
	fmt.Printf("  events/s last 25%%     %.0f\n", last)
	fmt.Printf("  events/s min %s window %.0f\n", c.progress, minWin)
	fmt.Printf("  commit time           %.0f%% of the write phase, mean %s per batch\n",
		100*commitTime.Seconds()/writeDur.Seconds(), ms(commitTime/time.Duration(max(len(marks), 1))))
	fmt.Printf("  CPU                   %.1f s (%.2f cores), %.1f µs/event\n",
		cpu.Seconds(), cpu.Seconds()/writeDur.Seconds(), float64(cpu.Microseconds())/float64(max(applied, 1)))
	others := (busy1 - busy0) - cpu
	fmt.Printf("  machine CPU           %.2f of %d cores busy; other processes and steal %.2f cores\n",
		(busy1-busy0).Seconds()/writeDur.Seconds(), runtime.NumCPU(), others.Seconds()/writeDur.Seconds())
	fmt.Printf("  logical bytes         %s\n", mib(logical))
	fmt.Printf("  write() bytes         %s (%.1fx logical)\n", mib(wchar), float64(wchar)/float64(logical))
	fmt.Printf("  storage write bytes   %s (%.1fx logical)\n", mib(written), float64(written)/float64(logical))
	fmt.Printf("  profile get (writing) p50 %s p99 %s max %s  n=%d found=%d err=%d\n",
		ms(gets.pct(.5)), ms(gets.pct(.99)), ms(gets.max()), gets.attempts, gets.found, gets.errs)
	fmt.Printf("  newest-%d scan        p50 %s p99 %s max %s  n=%d mean entries=%.1f err=%d\n", c.scanN,
		ms(scans.pct(.5)), ms(scans.pct(.99)), ms(scans.max()), scans.attempts,
		float64(scans.found)/float64(max(scans.attempts, 1)), scans.errs)
	fmt.Printf("  profile get (idle)    p50 %s p99 %s  n=%d\n", ms(idleGets.pct(.5)), ms(idleGets.pct(.99)), idleGets.attempts)
	fmt.Printf("  scan (idle)           p50 %s p99 %s  n=%d\n", ms(idleScans.pct(.5)), ms(idleScans.pct(.99)), idleScans.attempts)
	fmt.Printf("  disk at end           %s allocated open, %s after close (apparent %s)\n",
		gib(allocOpen), gib(allocClosed), gib(apparentClosed))
	fmt.Printf("  memory at end         VmHWM %s, VmRSS %s (anon %s, file %s), Go runtime Sys %s, heap in use %s\n",
		mib(mem["VmHWM"]), mib(mem["VmRSS"]), mib(mem["RssAnon"]), mib(mem["RssFile"]), mib(int64(rt.Sys)), mib(int64(rt.HeapInuse)))
	fmt.Printf("  close                 %.1fs\n", closeDur.Seconds())
	fmt.Printf("  engine                %s\n", engineStats)
	fmt.Println()
	fmt.Println("| engine | mode | events | events/s overall | events/s last 25% | get p50 / p99 | scan p50 / p99 | disk | VmHWM (anon) | storage writes |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	ev := fmt.Sprintf("%.1fM", float64(applied)/1e6)
	if stoppedEarly {
		ev += fmt.Sprintf(" (stopped at %.0fs)", writeDur.Seconds())
	}
	fmt.Printf("| %s | %s | %s | %.0f | %.0f | %s / %s | %s / %s | %s | %s (%s) | %.1fx |\n",
		c.engine, variant(c), ev, overall, last, ms(gets.pct(.5)), ms(gets.pct(.99)),
		ms(scans.pct(.5)), ms(scans.pct(.99)), gib(allocClosed), mib(mem["VmHWM"]), mib(mem["RssAnon"]),
		float64(written)/float64(logical))
	if gets.errs+scans.errs > 0 {
		return errors.New("read errors during the run")
	}
	return nil
}
