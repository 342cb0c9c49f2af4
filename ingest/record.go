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
//	partition uint16 | length uint32 | events as JSON lines (nudge.EncodeEvents)
const entryHeader = 6

// encodeRecord groups events by partition into one record. Within a
// partition the events keep their order.
func encodeRecord(events []nudge.Event, partitions int) ([]byte, error) {
	parts := make([]int, len(events))
	counts := make(map[int]int)
	for i := range events {
		parts[i] = bus.PartitionOf(events[i].CustomerKey(), partitions)
		counts[parts[i]]++
	}
	var rec []byte
	buf := make([]nudge.Event, 0, len(events))
	for p := range partitions {
		if counts[p] == 0 {
			continue
		}
		buf = buf[:0]
		for i := range events {
			if parts[i] == p {
				buf = append(buf, events[i])
			}
		}
		start := len(rec)
		rec = binary.BigEndian.AppendUint16(rec, uint16(p))
		rec = binary.BigEndian.AppendUint32(rec, 0)
		var err error
		if rec, err = nudge.EncodeEvents(rec, buf); err != nil {
			return nil, err
		}
		binary.BigEndian.PutUint32(rec[start+2:], uint32(len(rec)-start-entryHeader))
	}
	return rec, nil
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
