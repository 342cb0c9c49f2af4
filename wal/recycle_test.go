package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// 1008 bytes a record: four fit in a 4096-byte segment after its header.
var smallSegments = Options{SegmentSize: 4096}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func spareFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+spareExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func appendN(t *testing.T, w *WAL, g, n int) []entry {
	t.Helper()
	return appendSized(t, w, g, n, 1000)
}

func appendSized(t *testing.T, w *WAL, g, n, size int) []entry {
	t.Helper()
	var es []entry
	for i := range n {
		rec := payload(g, i, size)
		es = append(es, entry{appendT(t, w, rec), rec})
	}
	return es
}

// Retired segments become the next segments' files, and nothing of their
// previous records comes back: not through Read, not after a reopen.
func TestSegmentsAreRecycled(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, smallSegments)
	want := appendN(t, w, 1, 12) // segments 0-2 full
	appendN(t, w, 2, 0)
	rest := appendN(t, w, 3, 1) // segment 3
	want = append(want, rest...)
	old := map[uint64]bool{}
	for _, f := range segFiles(t, dir)[:2] {
		old[inode(t, f)] = true
	}
	if err := w.TruncateBefore(want[8].pos); err != nil { // segments 0 and 1
		t.Fatal(err)
	}
	if n := len(spareFiles(t, dir)); n != 2 {
		t.Fatalf("%d spare files after retiring two segments, want 2", n)
	}
	more := appendN(t, w, 4, 8) // fills segment 3, then segment 4 and part of 5
	want = append(want[8:], more...)
	if n := len(spareFiles(t, dir)); n != 0 {
		t.Fatalf("%d spare files left after two new segments, want 0", n)
	}
	files := segFiles(t, dir)
	for _, f := range files[len(files)-2:] {
		if !old[inode(t, f)] {
			t.Errorf("new segment %s is a new file, not a retired one", filepath.Base(f))
		}
	}
	got, _ := readAll(t, w, 0)
	checkEntries(t, got, want)

	w.Close()
	w = openT(t, dir, smallSegments)
	if r := w.Recovered(); r.Torn {
		t.Fatalf("a clean recycled segment recovered as torn: %+v", r)
	}
	got, _ = readAll(t, w, 0)
	checkEntries(t, got, want)
}

// A round into a recycled file that crashed before its end marker reached
// the disk leaves the file's old records right after the new ones, at a
// record boundary. They must fail their checksum under the new seal.
func TestStaleRecordOfRecycledFileIsNotTaken(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, smallSegments)
	want := appendN(t, w, 1, 5) // segment 0 full, one record in segment 1
	old, err := os.ReadFile(segFiles(t, dir)[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := w.TruncateBefore(want[4].pos); err != nil {
		t.Fatal(err)
	}
	want = append(want[4:], appendN(t, w, 2, 4)...) // fills segment 1, one record in segment 2, the recycled file
	w.Close()
	files := segFiles(t, dir)
	last := files[len(files)-1]
	// The new record is as long as the old ones: the old second record
	// starts right where the end marker is. Put its header back.
	end := int64(headerSize + recHeaderSize + 1000)
	overwrite(t, last, end, old[end:end+recHeaderSize])

	w = openT(t, dir, smallSegments)
	r := w.Recovered()
	if r.Records != 1 || !r.Torn || r.Reason != "checksum mismatch" || r.TornAt != want[len(want)-1].pos+recHeaderSize+1000 {
		t.Fatalf("Recovered %+v: want one record, then the old record refused", r)
	}
	got, _ := readAll(t, w, 0)
	checkEntries(t, got, want)
}

// A shredding boundary leaves no byte written before it in any file of the
// directory once truncated up to it: not in segments, not in spares, also
// when the process stopped between the boundary and the truncation.
func TestAppendInNewSegmentShredsSpares(t *testing.T) {
	for _, restart := range []bool{false, true} {
		dir := t.TempDir()
		w := openT(t, dir, smallSegments)
		secret := bytes.Repeat([]byte("key-of-a-person-to-erase "), 40)
		es := appendN(t, w, 1, 3)
		appendT(t, w, secret) // the last record of segment 0
		es = append(es, appendN(t, w, 1, 5)...)
		if err := w.TruncateBefore(es[7].pos); err != nil { // segments 0 and 1 become spares
			t.Fatal(err)
		}
		if len(spareFiles(t, dir)) == 0 {
			t.Fatal("no spare: the test proves nothing")
		}
		pos, err := w.AppendInNewSegment(context.Background(), []byte("erasure"))
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, w, 2, 1)
		if restart {
			w.Close()
			w = openT(t, dir, smallSegments)
		}
		if err := w.TruncateBefore(pos); err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, secret[:100]) {
				t.Fatalf("restart %v: %s holds a record written before the boundary", restart, e.Name())
			}
		}
		w.Close()
	}
}

// A Read that has a segment open when TruncateBefore retires it goes on
// reading that segment's records: the file is deleted, not reused.
func TestReadInProgressKeepsItsSegment(t *testing.T) {
	dir := t.TempDir()
	// Segments bigger than Read's buffer, so that it reads the file after
	// the retirement.
	const size = 16 << 10
	opts := Options{SegmentSize: 1 << 20, NoSync: true}
	w := openT(t, dir, opts)
	want := appendSized(t, w, 1, 64, size) // segment 0 full (63), one record in segment 1
	inside, release := make(chan struct{}), make(chan struct{})
	type readResult struct {
		got []entry
		err error
	}
	done := make(chan readResult, 1)
	go func() {
		var got []entry
		_, err := w.Read(0, func(pos uint64, rec []byte) error {
			if len(got) == 0 {
				close(inside)
				<-release
			}
			got = append(got, entry{pos, bytes.Clone(rec)})
			return nil
		})
		done <- readResult{got, err}
	}()
	<-inside
	if err := w.TruncateBefore(want[63].pos); err != nil {
		t.Fatal(err)
	}
	appendSized(t, w, 2, 62+30, size) // would reuse segment 0's file, past what Read has buffered, if it were a spare
	close(release)
	r := <-done
	if r.err != nil {
		t.Fatalf("Read across a retired segment: %v", r.err)
	}
	checkEntries(t, r.got, want)
}

// A segment written by a build before the seal (format version 1) is read
// as it was written, and appended to until the next segment, which has
// the seal.
func TestVersion1SegmentStillReads(t *testing.T) {
	dir := t.TempDir()
	seg := encodeSegHeader(0, 0)
	binary.LittleEndian.PutUint16(seg[4:], 1)
	var want []entry
	for i := range 3 {
		rec := payload(1, i, 1000)
		want = append(want, entry{uint64(len(seg)), rec})
		var h [recHeaderSize]byte
		putRecHeader(h[:], rec)
		seg = append(append(seg, h[:]...), rec...)
	}
	if err := os.WriteFile(filepath.Join(dir, segName(0)), seg, 0o644); err != nil {
		t.Fatal(err)
	}
	w := openT(t, dir, smallSegments)
	if r := w.Recovered(); r.Torn || r.Records != 3 {
		t.Fatalf("Recovered %+v, want 3 records", r)
	}
	want = append(want, appendN(t, w, 2, 3)...) // one in the old segment, two in a new one
	w.Close()
	w = openT(t, dir, smallSegments)
	got, _ := readAll(t, w, 0)
	checkEntries(t, got, want)
}

// BenchmarkAppendLatency is ingest's load on the WAL at 50,000 events/s:
// 500 Appends/s of 50 KB (batches of 100 events), open loop, with the
// forwarder's truncation after every round, on 64 MiB segments. It
// reports the Append's latency, with retired segments deleted and with
// them recycled, in one run (-benchtime 10000x: 20 s each).
func BenchmarkAppendLatency(b *testing.B) {
	for _, spares := range []int{0, 2} {
		name := map[int]string{0: "delete", 2: "recycle"}[spares]
		b.Run(name, func(b *testing.B) {
			w := openT(b, b.TempDir(), Options{})
			w.maxSpares = spares
			rec := make([]byte, 50<<10)
			stop := truncateBehind(w)
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			start := time.Now()
			b.ResetTimer()
			for i := range b.N {
				due := start.Add(time.Duration(i) * time.Second / 500)
				time.Sleep(time.Until(due))
				wg.Go(func() {
					t0 := time.Now()
					if _, err := w.Append(context.Background(), rec); err != nil {
						b.Error(err)
					}
					lat[i] = time.Since(t0)
				})
			}
			wg.Wait()
			b.StopTimer()
			stop()
			slices.Sort(lat)
			q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(q(0.999), "p99.9-ms")
			b.ReportMetric(float64(w.Stats().Syncs), "syncs")
		})
	}
}
