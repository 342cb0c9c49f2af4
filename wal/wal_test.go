package wal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/nudge-dev/nudge"
)

// payload returns a deterministic record for (g, i) of the given size.
func payload(g, i, size int) []byte {
	b := make([]byte, size)
	tag := fmt.Sprintf("%d:%d:", g, i)
	copy(b, tag)
	x := uint32(g*1_000_003 + i*7919 + 1)
	for k := len(tag); k < size; k++ {
		x = x*1664525 + 1013904223
		b[k] = byte(x >> 24)
	}
	return b
}

type entry struct {
	pos uint64
	rec []byte
}

func openT(t testing.TB, dir string, opts Options) *WAL {
	t.Helper()
	w, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func readAll(t testing.TB, w *WAL, from uint64) ([]entry, uint64) {
	t.Helper()
	var out []entry
	next, err := w.Read(from, func(pos uint64, rec []byte) error {
		out = append(out, entry{pos, bytes.Clone(rec)})
		return nil
	})
	if err != nil {
		t.Fatalf("Read(%d): %v", from, err)
	}
	return out, next
}

func appendT(t testing.TB, w *WAL, rec []byte) uint64 {
	t.Helper()
	pos, err := w.Append(context.Background(), rec)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return pos
}

// checkEntries asserts that got holds exactly want's records at want's
// positions.
func checkEntries(t *testing.T, got, want []entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].pos != want[i].pos || !bytes.Equal(got[i].rec, want[i].rec) {
			t.Fatalf("record %d: pos %d (%d bytes), want pos %d (%d bytes)", i, got[i].pos, len(got[i].rec), want[i].pos, len(want[i].rec))
		}
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// pendingRecords counts Appends queued and not yet taken by the writer.
func (w *WAL) pendingRecords() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.queue {
		n += len(c.reqs) - c.next
	}
	return n
}

func (w *WAL) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

func waitUntil(cond func() bool) {
	for !cond() {
		runtime.Gosched()
	}
}

// faults is a fileOps that can hold the writer inside a write and inject
// write, sync and preallocation errors.
type faults struct {
	mu       sync.Mutex
	hold     chan struct{} // if set, the next write announces itself on entered and waits for hold to be closed
	entered  chan struct{}
	writeErr error // next write writes half its bytes and fails with this
	syncErr  error // next sync fails with this (after the write went through)
	allocErr error // preallocations fail with this while set
	writes   []int // sizes of the writes
}

func (fl *faults) ops() fileOps {
	return fileOps{
		writeAt: func(f *os.File, p []byte, off int64) (int, error) {
			fl.mu.Lock()
			hold, werr := fl.hold, fl.writeErr
			fl.hold, fl.writeErr = nil, nil
			fl.writes = append(fl.writes, len(p))
			fl.mu.Unlock()
			if hold != nil {
				fl.entered <- struct{}{}
				<-hold
			}
			if werr != nil {
				n, _ := f.WriteAt(p[:len(p)/2], off)
				return n, &os.PathError{Op: "write", Path: f.Name(), Err: werr}
			}
			return f.WriteAt(p, off)
		},
		sync: func(f *os.File) error {
			fl.mu.Lock()
			serr := fl.syncErr
			fl.syncErr = nil
			fl.mu.Unlock()
			if serr != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
			}
			return osOps.sync(f)
		},
		allocate: func(f *os.File, size int64) error {
			fl.mu.Lock()
			aerr := fl.allocErr
			fl.mu.Unlock()
			if aerr != nil {
				return &os.PathError{Op: "fallocate", Path: f.Name(), Err: aerr}
			}
			return preallocate(f, size)
		},
	}
}

// holdNextWrite makes the writer's next write wait; it returns a function
// that waits until the writer is inside that write, and one that lets it go.
func (fl *faults) holdNextWrite() (wait func(), release func()) {
	hold := make(chan struct{})
	fl.mu.Lock()
	fl.hold, fl.entered = hold, make(chan struct{})
	entered := fl.entered
	fl.mu.Unlock()
	return func() { <-entered }, func() { close(hold) }
}

func (fl *faults) set(f func(fl *faults)) {
	fl.mu.Lock()
	f(fl)
	fl.mu.Unlock()
}

func openFaulty(t *testing.T, dir string, opts Options) (*WAL, *faults) {
	t.Helper()
	fl := &faults{}
	w, err := open(dir, opts, fl.ops())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, fl
}

type result struct {
	pos uint64
	err error
}

func goAppend(w *WAL, ctx context.Context, rec []byte) <-chan result {
	ch := make(chan result, 1)
	go func() {
		pos, err := w.Append(ctx, rec)
		ch <- result{pos, err}
	}()
	return ch
}

func TestRoundTrip(t *testing.T) {
	w := openT(t, t.TempDir(), Options{})
	var want []entry
	for i := range 100 {
		rec := payload(0, i, 1+i*37)
		pos := appendT(t, w, rec)
		if i == 0 && pos != headerSize {
			t.Fatalf("first position %d, want %d", pos, headerSize)
		}
		if i > 0 && pos <= want[i-1].pos {
			t.Fatalf("position %d after %d: not increasing", pos, want[i-1].pos)
		}
		want = append(want, entry{pos, rec})
	}
	end, _ := w.Committed()
	last := want[len(want)-1]
	if end != last.pos+recHeaderSize+uint64(len(last.rec)) {
		t.Fatalf("committed end %d, want just past the last record", end)
	}

	got, next := readAll(t, w, 0)
	checkEntries(t, got, want)
	if next != end {
		t.Fatalf("next %d, want %d", next, end)
	}

	// From the middle: at a record start, and inside a record.
	got, _ = readAll(t, w, want[50].pos)
	checkEntries(t, got, want[50:])
	got, _ = readAll(t, w, want[50].pos+1)
	checkEntries(t, got, want[51:])
	// Nothing past the end.
	got, next = readAll(t, w, end)
	if len(got) != 0 || next != end {
		t.Fatalf("Read(end) gave %d records, next %d", len(got), next)
	}

	// fn's error stops Read at that record, and Read(next) delivers it again.
	boom := errors.New("boom")
	n := 0
	next, err := w.Read(0, func(pos uint64, rec []byte) error {
		if n == 10 {
			return boom
		}
		n++
		return nil
	})
	if !errors.Is(err, boom) || next != want[10].pos {
		t.Fatalf("Read with failing fn: next %d, err %v; want %d, boom", next, err, want[10].pos)
	}
	got, _ = readAll(t, w, next)
	checkEntries(t, got, want[10:])

	if _, err := w.Append(context.Background(), nil); !errors.Is(err, ErrRecordSize) {
		t.Fatalf("empty Append: %v", err)
	}
}

// Read from any position (using the hints kept for record starts), before
// and after a reopen.
func TestReadFromAnywhere(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, Options{SegmentSize: 1 << 20, NoSync: true})
	var want []entry
	for i := range 3000 {
		rec := payload(11, i, 300+i%200)
		want = append(want, entry{appendT(t, w, rec), rec})
	}
	check := func(w *WAL) {
		for i := 0; i < len(want); i += 331 {
			got, _ := readAll(t, w, want[i].pos)
			checkEntries(t, got, want[i:])
			got, _ = readAll(t, w, want[i].pos+5)
			checkEntries(t, got, want[i+1:])
			// Stop after one record, then go on from the returned next.
			stop := errors.New("stop")
			next, err := w.Read(want[i].pos-1, func(uint64, []byte) error { return stop })
			if !errors.Is(err, stop) || next != want[i].pos {
				t.Fatalf("Read(%d) stopped at %d (%v), want %d", want[i].pos-1, next, err, want[i].pos)
			}
			got, _ = readAll(t, w, next)
			checkEntries(t, got, want[i:])
		}
	}
	check(w)
	w.Close()
	w = openT(t, dir, Options{SegmentSize: 1 << 20, NoSync: true})
	check(w)
}

func TestConcurrentGroupCommit(t *testing.T) {
	const goroutines, per = 64, 500
	w := openT(t, t.TempDir(), Options{SegmentSize: 4 << 20})
	positions := make([][]uint64, goroutines)
	var wg sync.WaitGroup
	errc := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range per {
				pos, err := w.Append(context.Background(), payload(g, i, 100+(g*31+i)%400))
				if err != nil {
					errc <- err
					return
				}
				positions[g] = append(positions[g], pos)
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	byPos := make(map[uint64][2]int, goroutines*per)
	for g, ps := range positions {
		for i, p := range ps {
			if i > 0 && p <= ps[i-1] {
				t.Fatalf("goroutine %d: position %d after %d", g, p, ps[i-1])
			}
			if _, dup := byPos[p]; dup {
				t.Fatalf("position %d returned twice", p)
			}
			byPos[p] = [2]int{g, i}
		}
	}
	seen := 0
	var prev uint64
	_, err := w.Read(0, func(pos uint64, rec []byte) error {
		if pos <= prev {
			return fmt.Errorf("position %d after %d", pos, prev)
		}
		prev = pos
		gi, ok := byPos[pos]
		if !ok {
			return fmt.Errorf("record at %d was not acknowledged", pos)
		}
		delete(byPos, pos) // so a second delivery fails
		g, i := gi[0], gi[1]
		if !bytes.Equal(rec, payload(g, i, 100+(g*31+i)%400)) {
			return fmt.Errorf("record at %d: wrong content", pos)
		}
		seen++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != goroutines*per || len(byPos) != 0 {
		t.Fatalf("read %d records, %d acknowledged ones missing", seen, len(byPos))
	}
	st := w.Stats()
	t.Logf("%d appends, %d rounds, %d fdatasyncs, %d segments", st.Appends, st.Rounds, st.Syncs, st.Segments)
	if st.Appends != goroutines*per {
		t.Fatalf("Stats.Appends %d", st.Appends)
	}
	if st.Syncs == 0 || st.Syncs > st.Appends/8 {
		t.Fatalf("%d fdatasyncs for %d appends: no group commit", st.Syncs, st.Appends)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, Options{SegmentSize: 8 << 10})
	var want []entry
	for i := range 30 {
		rec := payload(1, i, 700)
		want = append(want, entry{appendT(t, w, rec), rec})
	}
	end, _ := w.Committed()
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open of an open directory: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) || !errors.Is(err, nudge.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}

	w = openT(t, dir, Options{SegmentSize: 8 << 10})
	if r := w.Recovered(); r.Torn || r.End != end || r.Segments < 2 {
		t.Fatalf("Recovered %+v, want clean with end %d", r, end)
	}
	got, _ := readAll(t, w, 0)
	checkEntries(t, got, want)
	for i := 30; i < 40; i++ {
		rec := payload(1, i, 700)
		pos := appendT(t, w, rec)
		if pos <= want[len(want)-1].pos {
			t.Fatalf("position %d after reopen is not past %d", pos, want[len(want)-1].pos)
		}
		want = append(want, entry{pos, rec})
	}
	got, _ = readAll(t, w, 0)
	checkEntries(t, got, want)
}

// writeClosed fills a WAL with n records of size bytes and closes it.
func writeClosed(t *testing.T, dir string, n, size int) []entry {
	t.Helper()
	w, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var want []entry
	for i := range n {
		rec := payload(2, i, size)
		want = append(want, entry{appendT(t, w, rec), rec})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

func TestTornTail(t *testing.T) {
	seg0 := func(dir string) string { return filepath.Join(dir, segName(0)) }
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, want []entry)
		keep   int // records that must survive
		reason string
	}{
		{"truncated mid-record", func(t *testing.T, path string, want []entry) {
			if err := os.Truncate(path, int64(want[9].pos)+recHeaderSize+100); err != nil {
				t.Fatal(err)
			}
		}, 9, "short record"},
		{"truncated mid-header", func(t *testing.T, path string, want []entry) {
			if err := os.Truncate(path, int64(want[9].pos)+5); err != nil {
				t.Fatal(err)
			}
		}, 9, "short record header"},
		{"last record overwritten", func(t *testing.T, path string, want []entry) {
			overwrite(t, path, int64(want[9].pos)+recHeaderSize+200, []byte("garbage"))
		}, 9, "checksum mismatch"},
		{"middle record overwritten", func(t *testing.T, path string, want []entry) {
			overwrite(t, path, int64(want[5].pos)+recHeaderSize, []byte{0xff})
		}, 5, "checksum mismatch"},
		{"length overwritten", func(t *testing.T, path string, want []entry) {
			overwrite(t, path, int64(want[9].pos), []byte{0xff, 0xff, 0xff, 0x7f})
		}, 9, "short record"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := writeClosed(t, dir, 10, 500)
			tc.damage(t, seg0(dir), want)

			w := openT(t, dir, Options{})
			r := w.Recovered()
			if !r.Torn || r.TornAt != want[tc.keep].pos || r.Records != tc.keep || r.Reason != tc.reason {
				t.Fatalf("Recovered %+v, want torn at %d (%s) after %d records", r, want[tc.keep].pos, tc.reason, tc.keep)
			}
			if st, err := os.Stat(seg0(dir)); err != nil || st.Size() != defaultSegmentSize {
				t.Fatalf("segment size after recovery: %v %v", st.Size(), err)
			}
			got, next := readAll(t, w, 0)
			checkEntries(t, got, want[:tc.keep])
			if next != want[tc.keep].pos || r.End != next {
				t.Fatalf("end %d (recovered %d), want %d", next, r.End, want[tc.keep].pos)
			}
			// New appends go where the torn record was and survive a reopen.
			rec := payload(3, 0, 300)
			pos := appendT(t, w, rec)
			if pos != want[tc.keep].pos {
				t.Fatalf("new record at %d, want %d", pos, want[tc.keep].pos)
			}
			want = append(want[:tc.keep:tc.keep], entry{pos, rec})
			w.Close()
			w = openT(t, dir, Options{})
			if w.Recovered().Torn {
				t.Fatalf("torn again: %+v", w.Recovered())
			}
			got, _ = readAll(t, w, 0)
			checkEntries(t, got, want)
		})
	}
}

func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// A valid-looking record past the end (left by a round that never
// completed, whose first page did not reach the disk) must never come back,
// even once new records fill the gap before it.
func TestStaleRecordPastEnd(t *testing.T) {
	dir := t.TempDir()
	want := writeClosed(t, dir, 10, 1000)
	end := int64(want[9].pos) + recHeaderSize + 1000
	stale := payload(9, 9, 1000)
	enc := make([]byte, recHeaderSize+len(stale))
	putRecHeader(enc, stale)
	copy(enc[recHeaderSize:], stale)
	overwrite(t, filepath.Join(dir, segName(0)), end+recHeaderSize+1000, enc)

	w := openT(t, dir, Options{})
	rec := payload(3, 1, 1000) // exactly fills the gap before the stale record
	want = append(want, entry{appendT(t, w, rec), rec})
	w.Close()
	w = openT(t, dir, Options{})
	got, _ := readAll(t, w, 0)
	checkEntries(t, got, want)
}

const crashEnv = "WAL_TEST_CRASH_DIR"

// TestCrashChild is the child process of TestKill9: it appends from several
// goroutines until killed, printing each acknowledged record.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("helper process of TestKill9")
	}
	w, err := Open(dir, Options{SegmentSize: 256 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	run, _ := strconv.Atoi(os.Getenv(crashEnv + "_RUN"))
	var mu sync.Mutex
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				size := crashSize(g, i)
				pos, err := w.Append(context.Background(), payload(run*100+g, i, size))
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %d %d %d %d\n", pos, run*100+g, i, size)
				mu.Unlock()
			}
		}()
	}
	select {}
}

func crashSize(g, i int) int { return 50 + (g*7919+i*104729)%6000 }

func TestKill9(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	const acksPerRun = 1500
	type ack struct{ g, i, size int }
	acked := map[uint64]ack{}
	var maxPos uint64
	for run := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashEnv+"_RUN="+strconv.Itoa(run))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		n := 0
		var firstPos uint64
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var pos uint64
			var a ack
			if _, err := fmt.Sscanf(sc.Text(), "ack %d %d %d %d", &pos, &a.g, &a.i, &a.size); err != nil {
				continue
			}
			if _, dup := acked[pos]; dup {
				t.Fatalf("run %d: position %d acknowledged twice", run, pos)
			}
			if firstPos == 0 || pos < firstPos {
				firstPos = pos
			}
			acked[pos] = a
			n++
			if n == acksPerRun {
				cmd.Process.Signal(syscall.SIGKILL) // keep reading: acks already printed count too
			}
		}
		err = cmd.Wait()
		if n < acksPerRun {
			t.Fatalf("run %d: child stopped after %d acks: %v\n%s", run, n, err, stderr.String())
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: child not killed: %v", run, err)
		}
		if firstPos <= maxPos {
			t.Fatalf("run %d: position %d not past the previous run's %d", run, firstPos, maxPos)
		}
		for p := range acked {
			maxPos = max(maxPos, p)
		}

		w, err := Open(dir, Options{SegmentSize: 256 << 10})
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		_, err = w.Read(0, func(pos uint64, rec []byte) error {
			a, ok := acked[pos]
			if !ok {
				return nil // written but killed before it was printed
			}
			if !bytes.Equal(rec, payload(a.g, a.i, a.size)) {
				return fmt.Errorf("record at %d: wrong content", pos)
			}
			found++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if found != len(acked) {
			t.Fatalf("run %d: %d of %d acknowledged records found", run, found, len(acked))
		}
		t.Logf("run %d: %d acks, recovery %+v, %d segments", run, n, w.Recovered(), w.Stats().Segments)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRolloverAndTruncate(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	w := openT(t, dir, opts)
	// 1008 bytes a record: four fit in a 4096-byte segment after its header.
	var want []entry
	for i := range 10 {
		rec := payload(4, i, 1000)
		want = append(want, entry{appendT(t, w, rec), rec})
	}
	files := segFiles(t, dir)
	if len(files) != 3 {
		t.Fatalf("%d segments, want 3: %v", len(files), files)
	}
	for i := 1; i < 10; i++ {
		step := uint64(1008)
		if i%4 == 0 {
			step += headerSize // a new segment's header
		}
		if want[i].pos-want[i-1].pos != step {
			t.Fatalf("record %d at %d, previous at %d", i, want[i].pos, want[i-1].pos)
		}
	}
	// A record too big for a segment gets one of its own size.
	big := payload(4, 10, 10000)
	want = append(want, entry{appendT(t, w, big), big})
	st, err := os.Stat(filepath.Join(dir, segName(want[10].pos-headerSize)))
	if err != nil || st.Size() != headerSize+recHeaderSize+10000 {
		t.Fatalf("big record segment: %v, %v", st, err)
	}
	rec := payload(4, 11, 1000)
	want = append(want, entry{appendT(t, w, rec), rec})
	if n := len(segFiles(t, dir)); n != 5 {
		t.Fatalf("%d segments, want 5", n)
	}
	got, _ := readAll(t, w, 0)
	checkEntries(t, got, want)

	// Segment 0 holds records 0-3, segment 1 records 4-7.
	if err := w.TruncateBefore(want[5].pos); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != 4 {
		t.Fatalf("%d segments after TruncateBefore, want 4", n)
	}
	got, _ = readAll(t, w, 0)
	checkEntries(t, got, want[4:])
	got, _ = readAll(t, w, want[1].pos) // a deleted position
	checkEntries(t, got, want[4:])
	// The end of segment 1 is the base of segment 2, just before record 8.
	if err := w.TruncateBefore(want[8].pos - headerSize - 1); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != 4 {
		t.Fatalf("segment 1 deleted before all of it was covered")
	}
	if err := w.TruncateBefore(want[8].pos - headerSize); err != nil {
		t.Fatal(err)
	}
	got, _ = readAll(t, w, 0)
	checkEntries(t, got, want[8:])
	// Never the active segment.
	if err := w.TruncateBefore(math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments after truncating everything, want 1", n)
	}
	got, _ = readAll(t, w, 0)
	checkEntries(t, got, want[11:])

	// Positions go on increasing after a reopen.
	w.Close()
	w = openT(t, dir, opts)
	rec = payload(4, 12, 1000)
	pos := appendT(t, w, rec)
	if pos <= want[11].pos {
		t.Fatalf("position %d after reopen, last was %d", pos, want[11].pos)
	}
	want = append(want, entry{pos, rec})
	got, _ = readAll(t, w, 0)
	checkEntries(t, got, want[11:])
}

// setupRound queues n records behind a write the writer is held in, and
// returns the held Append's result, the queued ones' and the function that
// lets the writer go.
func setupRound(t *testing.T, w *WAL, fl *faults, n, size int) (<-chan result, []<-chan result, [][]byte, func()) {
	t.Helper()
	wait, release := fl.holdNextWrite()
	held := goAppend(w, context.Background(), payload(5, 0, size))
	wait()
	var res []<-chan result
	var recs [][]byte
	for i := range n {
		rec := payload(5, 1+i, size)
		recs = append(recs, rec)
		res = append(res, goAppend(w, context.Background(), rec))
	}
	waitUntil(func() bool { return w.pendingRecords() == n })
	return held, res, recs, release
}

func TestWriteErrorENOSPC(t *testing.T) {
	dir := t.TempDir()
	w, fl := openFaulty(t, dir, Options{})
	a := payload(5, 100, 500)
	want := []entry{{appendT(t, w, a), a}}
	endA, _ := w.Committed()

	held, queued, _, release := setupRound(t, w, fl, 10, 500)
	fl.set(func(fl *faults) { fl.writeErr = syscall.ENOSPC }) // for the next round: the queued ones
	release()
	b := <-held
	if b.err != nil {
		t.Fatal(b.err)
	}
	want = append(want, entry{b.pos, payload(5, 0, 500)})
	for i, ch := range queued {
		r := <-ch
		if !errors.Is(r.err, syscall.ENOSPC) {
			t.Fatalf("queued Append %d: err %v, want ENOSPC", i, r.err)
		}
	}
	end, _ := w.Committed()
	if end != endA+recHeaderSize+500 {
		t.Fatalf("committed end %d moved past the failed round", end)
	}
	got, _ := readAll(t, w, 0)
	checkEntries(t, got, want)
	if st := w.Stats(); st.Failed != 1 {
		t.Fatalf("Stats %+v, want 1 failed round", st)
	}

	// The next round works, in a new segment, at the position the failed one had.
	c := payload(5, 200, 500)
	pos := appendT(t, w, c)
	if pos != end+headerSize {
		t.Fatalf("position after failure %d, want %d", pos, end+headerSize)
	}
	want = append(want, entry{pos, c})
	got, _ = readAll(t, w, 0)
	checkEntries(t, got, want)
	got, _ = readAll(t, w, want[1].pos+1)
	checkEntries(t, got, want[2:])

	w.Close()
	w = openT(t, dir, Options{})
	got, _ = readAll(t, w, 0)
	checkEntries(t, got, want)
}

// After a failed fdatasync the records are whole in the file; they must not
// come back at the next Open even if the WAL is closed right away.
func TestSyncErrorEIO(t *testing.T) {
	dir := t.TempDir()
	w, fl := openFaulty(t, dir, Options{})
	a := payload(6, 0, 300)
	want := []entry{{appendT(t, w, a), a}}
	fl.set(func(fl *faults) { fl.syncErr = syscall.EIO })
	if _, err := w.Append(context.Background(), payload(6, 1, 300)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append with failing sync: %v", err)
	}
	got, _ := readAll(t, w, 0)
	checkEntries(t, got, want)
	w.Close()

	w = openT(t, dir, Options{})
	got, _ = readAll(t, w, 0)
	checkEntries(t, got, want)
	b := payload(6, 2, 300)
	want = append(want, entry{appendT(t, w, b), b})
	got, _ = readAll(t, w, 0)
	checkEntries(t, got, want)
}

func TestSegmentCreateENOSPC(t *testing.T) {
	dir := t.TempDir()
	w, fl := openFaulty(t, dir, Options{SegmentSize: 4096})
	var want []entry
	for i := range 4 { // fills the first segment
		rec := payload(7, i, 1000)
		want = append(want, entry{appendT(t, w, rec), rec})
	}
	fl.set(func(fl *faults) { fl.allocErr = syscall.ENOSPC })
	for range 2 {
		if _, err := w.Append(context.Background(), payload(7, 99, 1000)); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Append needing a new segment: %v, want ENOSPC", err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*"+tmpExt)); len(m) != 0 {
		t.Fatalf("left over: %v", m)
	}
	if n := len(segFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments", n)
	}
	fl.set(func(fl *faults) { fl.allocErr = nil })
	rec := payload(7, 4, 1000)
	want = append(want, entry{appendT(t, w, rec), rec})
	got, _ := readAll(t, w, 0)
	checkEntries(t, got, want)
}

func TestMaxBatchBytes(t *testing.T) {
	w, fl := openFaulty(t, t.TempDir(), Options{MaxBatchBytes: 3000})
	_, queued, recs, release := setupRound(t, w, fl, 6, 1000)
	big := goAppend(w, context.Background(), payload(5, 99, 5000))
	waitUntil(func() bool { return w.pendingRecords() == 7 })
	release()
	var want []entry
	for i, ch := range queued {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		want = append(want, entry{r.pos, recs[i]})
	}
	if r := <-big; r.err != nil {
		t.Fatal(r.err)
	}
	// The goroutines queued in no particular order.
	sort.Slice(want, func(i, j int) bool { return want[i].pos < want[j].pos })
	got, _ := readAll(t, w, want[0].pos)
	checkEntries(t, got[:6], want)
	fl.mu.Lock()
	defer fl.mu.Unlock()
	rounds := 0
	for _, n := range fl.writes[1:] {
		if n > 3000 && n != recHeaderSize+5000 {
			t.Fatalf("a round wrote %d bytes", n)
		}
		rounds++
	}
	if rounds != 4 { // 6 records, two per round (3 would be 3024 bytes), then the big one alone
		t.Fatalf("%d rounds (%v)", rounds, fl.writes)
	}
}

// At most 4*MaxBatchBytes wait in the queue; an Append whose ctx ends while
// it waits for room is not written.
func TestBackpressure(t *testing.T) {
	w, fl := openFaulty(t, t.TempDir(), Options{MaxBatchBytes: 1000})
	_, queued, recs, release := setupRound(t, w, fl, 3, 992) // 3000 bytes queued
	ctx, cancel := context.WithCancel(context.Background())
	blocked := goAppend(w, ctx, payload(5, 50, 992)) // would make 4000: fits
	waitUntil(func() bool { return w.pendingRecords() == 4 })
	refused := goAppend(w, ctx, []byte("no room")) // 4015 > 4000: waits
	select {
	case r := <-refused:
		t.Fatalf("Append past the queue limit returned %+v", r)
	default:
	}
	cancel()
	if r := <-refused; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Append waiting for room: %v", r.err)
	}
	release()
	for _, ch := range queued {
		if r := <-ch; r.err != nil {
			t.Fatal(r.err)
		}
	}
	<-blocked // canceled too, but queued: it is written
	rec := []byte("after")
	pos := appendT(t, w, rec)
	got, _ := readAll(t, w, 0)
	if len(got) != 6 || !bytes.Equal(got[4].rec, payload(5, 50, 992)) || got[5].pos != pos {
		t.Fatalf("read %d records", len(got))
	}
	for _, rec := range recs {
		if !slices.ContainsFunc(got[1:4], func(e entry) bool { return bytes.Equal(e.rec, rec) }) {
			t.Fatalf("a queued record is missing")
		}
	}
}

func TestCommittedNotifies(t *testing.T) {
	w := openT(t, t.TempDir(), Options{})
	end0, ch0 := w.Committed()
	select {
	case <-ch0:
		t.Fatal("changed closed before anything was written")
	default:
	}
	rec := payload(8, 0, 64)
	res := goAppend(w, context.Background(), rec)
	<-ch0
	end1, ch1 := w.Committed()
	r := <-res
	if r.err != nil || r.pos != end0 || end1 != end0+recHeaderSize+64 {
		t.Fatalf("end %d -> %d, record at %d (%v)", end0, end1, r.pos, r.err)
	}
	select {
	case <-ch1:
		t.Fatal("new channel already closed")
	default:
	}
	// A forwarder-style loop sees every record without polling.
	done := make(chan []uint64)
	go func() {
		var seen []uint64
		next := uint64(0)
		for len(seen) < 11 {
			end, ch := w.Committed()
			if next >= end {
				<-ch
				continue
			}
			next, _ = w.Read(next, func(pos uint64, _ []byte) error {
				seen = append(seen, pos)
				return nil
			})
		}
		done <- seen
	}()
	for i := range 10 {
		appendT(t, w, payload(8, 1+i, 64))
	}
	if seen := <-done; len(seen) != 11 {
		t.Fatalf("forwarder saw %d records", len(seen))
	}
	w.Close()
	_, ch := w.Committed()
	<-ch // closed by Close
	if _, err := w.Read(0, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

func TestCloseFailsQueued(t *testing.T) {
	dir := t.TempDir()
	w, fl := openFaulty(t, dir, Options{})
	held, queued, _, release := setupRound(t, w, fl, 5, 100)
	closed := make(chan error)
	go func() { closed <- w.Close() }()
	waitUntil(w.isClosed)
	if _, err := w.Append(context.Background(), []byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	h := <-held
	if h.err != nil {
		t.Fatalf("in-flight Append failed: %v", h.err)
	}
	for _, ch := range queued {
		if r := <-ch; !errors.Is(r.err, ErrClosed) {
			t.Fatalf("queued Append: %v, want ErrClosed", r.err)
		}
	}
	if err := w.TruncateBefore(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("TruncateBefore after Close: %v", err)
	}
	w = openT(t, dir, Options{})
	got, _ := readAll(t, w, 0)
	checkEntries(t, got, []entry{{h.pos, payload(5, 0, 100)}})
}

func TestContext(t *testing.T) {
	w, fl := openFaulty(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Append(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with done ctx: %v", err)
	}
	if st := w.Stats(); st.Rounds != 0 {
		t.Fatalf("a record was written: %+v", st)
	}

	// Once queued, the record is written even though its Append gave up.
	wait, release := fl.holdNextWrite()
	held := goAppend(w, context.Background(), []byte("held"))
	wait()
	ctx, cancel = context.WithCancel(context.Background())
	res := goAppend(w, ctx, []byte("given up"))
	waitUntil(func() bool { return w.pendingRecords() == 1 })
	cancel()
	if r := <-res; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Append whose ctx ended: %v", r.err)
	}
	release()
	<-held
	for {
		end, ch := w.Committed()
		if end == headerSize+2*recHeaderSize+uint64(len("held")+len("given up")) {
			break
		}
		<-ch
	}
	got, _ := readAll(t, w, 0)
	if len(got) != 2 || string(got[1].rec) != "given up" {
		t.Fatalf("records %v", got)
	}
}

func TestNoSync(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, Options{NoSync: true, SegmentSize: 4096})
	var want []entry
	for i := range 20 {
		rec := payload(9, i, 900)
		want = append(want, entry{appendT(t, w, rec), rec})
	}
	if st := w.Stats(); st.Syncs != 0 || st.Rounds != 20 {
		t.Fatalf("Stats %+v", st)
	}
	w.Close()
	w = openT(t, dir, Options{NoSync: true, SegmentSize: 4096})
	got, _ := readAll(t, w, 0)
	checkEntries(t, got, want)
}

func TestForeignFiles(t *testing.T) {
	dir := t.TempDir()
	writeClosed(t, dir, 3, 10)
	os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, segName(99)+tmpExt), []byte("x"), 0o644)
	w := openT(t, dir, Options{})
	if got, _ := readAll(t, w, 0); len(got) != 3 {
		t.Fatalf("%d records", len(got))
	}
	if _, err := os.Stat(filepath.Join(dir, segName(99)+tmpExt)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary segment not removed: %v", err)
	}
	w.Close()
	// A segment with a bad header is an error, not silently skipped.
	overwrite(t, filepath.Join(dir, segName(0)), 0, []byte("XXXX"))
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("Open with a bad header: %v", err)
	}
}

// A record whose checksum no longer matches is reported by Read.
func TestReadDetectsCorruption(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, Options{})
	var pos []uint64
	for i := range 3 {
		pos = append(pos, appendT(t, w, payload(10, i, 100)))
	}
	overwrite(t, filepath.Join(dir, segName(0)), int64(pos[1])+recHeaderSize+3, []byte{'!'})
	n := 0
	next, err := w.Read(0, func(uint64, []byte) error { n++; return nil })
	if !errors.Is(err, ErrCorrupt) || n != 1 || next != pos[1] {
		t.Fatalf("Read over a corrupt record: n=%d next=%d err=%v", n, next, err)
	}
}

// truncateBehind retires segments as they fill, as the forwarder does, to
// bound disk use, until the returned stop is called.
func truncateBehind(w *WAL) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			end, changed := w.Committed()
			w.TruncateBefore(end)
			select {
			case <-changed:
			case <-quit:
				return
			}
		}
	}()
	return func() { close(quit); <-done }
}

func benchAppend(b *testing.B, opts Options) {
	w := openT(b, b.TempDir(), opts)
	rec := make([]byte, 6<<10)
	for i := range rec {
		rec[i] = byte(i)
	}
	stop := truncateBehind(w)
	b.SetBytes(int64(len(rec)))
	b.SetParallelism(32) // many concurrent ingest requests per CPU
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := w.Append(context.Background(), rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	stop()
	st := w.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(st.Syncs), "syncs")
	b.ReportMetric(float64(st.Appends)/float64(max(st.Rounds, 1)), "records/round")
}

// BenchmarkAppendParallel: 6 KB records, 32 goroutines per CPU, fdatasync on.
func BenchmarkAppendParallel(b *testing.B) { benchAppend(b, Options{}) }

// BenchmarkAppendNoSync: the same without fdatasync (weak mode).
func BenchmarkAppendNoSync(b *testing.B) { benchAppend(b, Options{NoSync: true}) }

func TestAppendInNewSegmentLeavesNothingBefore(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, Options{SegmentSize: 1 << 20})
	secret := []byte("key-of-a-person-to-erase")
	appendT(t, w, secret)
	appendT(t, w, payload(1, 1, 100))
	pos, err := w.AppendInNewSegment(context.Background(), []byte("erasure"))
	if err != nil {
		t.Fatal(err)
	}
	after := appendT(t, w, payload(1, 2, 100))
	if err := w.TruncateBefore(pos); err != nil {
		t.Fatal(err)
	}
	for _, name := range segFiles(t, dir) {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, secret) {
			t.Fatalf("segment %s still holds a record written before the new segment", name)
		}
	}
	got, _ := readAll(t, w, 0)
	checkEntries(t, got, []entry{{pos, []byte("erasure")}, {after, payload(1, 2, 100)}})

	// In an empty active segment the record replaces it: no empty file is left behind.
	w2 := openT(t, t.TempDir(), Options{SegmentSize: 1 << 20})
	if _, err := w2.AppendInNewSegment(context.Background(), []byte("first")); err != nil {
		t.Fatal(err)
	}
	if n := w2.Stats().Segments; n != 1 {
		t.Fatalf("%d segments after a new segment replaced an empty one, want 1", n)
	}
}
