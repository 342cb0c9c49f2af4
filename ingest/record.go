package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
)

// A write-ahead record holds one request's accepted events, grouped by log
// partition so that the forwarder can route them without decoding a single
// event: a sequence of entries, each
//
//	partition uint16 | length uint32 | events in the log's payload format (nudge.EncodeEvents)
const entryHeader = 6

// encodeRecord groups events by partition into one record. Within a
// partition the events keep their order.
func encodeRecord(events []nudge.Event, partitions int) []byte {
	byPart := make(map[int][]int) // partition -> indexes into events
	size := 0
	for i := range events {
		p := bus.PartitionOf(events[i].CustomerKey(), partitions)
		byPart[p] = append(byPart[p], i)
		size += 64 + len(events[i].Properties) + len(events[i].Context) + len(events[i].Traits)
	}
	rec := make([]byte, 0, size+len(byPart)*entryHeader)
	for p := range partitions {
		idx := byPart[p]
		if len(idx) == 0 {
			continue
		}
		start := len(rec)
		rec = binary.BigEndian.AppendUint16(rec, uint16(p))
		rec = binary.BigEndian.AppendUint32(rec, 0)
		for _, i := range idx {
			rec = nudge.AppendEncoded(rec, &events[i])
		}
		binary.BigEndian.PutUint32(rec[start+2:], uint32(len(rec)-start-entryHeader))
	}
	return rec
}

var errBadRecord = errors.New("ingest: malformed write-ahead record")

// eachEntry calls fn for every partition entry of a record.
func eachEntry(rec []byte, fn func(partition int, payload []byte)) error {
	for len(rec) > 0 {
		if len(rec) < entryHeader {
			return errBadRecord
		}
		p := int(binary.BigEndian.Uint16(rec))
		n := int(binary.BigEndian.Uint32(rec[2:]))
		if len(rec) < entryHeader+n {
			return fmt.Errorf("%w: entry of %d bytes, %d left", errBadRecord, n, len(rec)-entryHeader)
		}
		fn(p, rec[entryHeader:entryHeader+n])
		rec = rec[entryHeader+n:]
	}
	return nil
}
