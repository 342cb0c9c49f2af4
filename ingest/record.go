package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/nudge-dev/nudge"
	"github.com/nudge-dev/nudge/bus"
	"github.com/nudge-dev/nudge/shred"
)

// A write-ahead record holds one request's accepted events, grouped by log
// partition so that the forwarder can route them without decoding a single
// event: a sequence of entries, each
//
//	partition uint16 | length uint32 | events in the log's payload format (nudge.EncodeEvents)
//
// The events are sealed (package shred). When a key they were sealed with
// is not yet durable in the keyring, the record starts with an entry of
// partition keysEntry holding those keys (shred.KeyRecord), so that the
// record alone can be read after a crash.
const (
	entryHeader = 6
	keysEntry   = 0xffff
)

// encodeRecord seals the events and groups them by partition into one
// record. Within a partition the events keep their order. Events of erased
// people (shred.ErrShredded) are left out; dropped counts them.
func encodeRecord(events []nudge.Event, partitions int, keys *shred.Keyring) (rec []byte, dropped int, err error) {
	byPart := make(map[int][]int) // partition -> indexes into events
	size := 0
	var pending []shred.KeyRecord
	for i := range events {
		p := bus.PartitionOf(events[i].CustomerKey(), partitions)
		key, err := shred.SealEvent(keys, &events[i])
		if errors.Is(err, shred.ErrShredded) {
			dropped++
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		if key != nil && !slices.Contains(pending, *key) {
			pending = append(pending, *key)
		}
		byPart[p] = append(byPart[p], i)
		size += 160 + len(events[i].Sealed)
	}
	rec = make([]byte, 0, size+len(byPart)*entryHeader+len(pending)*shred.KeyRecordSize+entryHeader)
	if len(pending) > 0 {
		rec = binary.BigEndian.AppendUint16(rec, keysEntry)
		rec = binary.BigEndian.AppendUint32(rec, uint32(len(pending)*shred.KeyRecordSize))
		for _, k := range pending {
			rec = k.Append(rec)
		}
	}
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
	return rec, dropped, nil
}

// eachKey calls fn for every key record of a keys entry.
func eachKey(payload []byte, fn func(shred.KeyRecord) error) error {
	if len(payload)%shred.KeyRecordSize != 0 {
		return fmt.Errorf("%w: keys entry of %d bytes", errBadRecord, len(payload))
	}
	for ; len(payload) > 0; payload = payload[shred.KeyRecordSize:] {
		k, err := shred.ParseKeyRecord(payload[:shred.KeyRecordSize])
		if err != nil {
			return fmt.Errorf("%w: %v", errBadRecord, err)
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

var errBadRecord = errors.New("ingest: malformed write-ahead record")

// eachEntry calls fn for every entry of a record, the keys entry included.
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
