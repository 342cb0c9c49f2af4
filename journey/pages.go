package journey

import (
	"context"
	"encoding/hex"
	"slices"
)

// The admin API lists two queues kept under due-ordered keys,
// <prefix><time: 8 bytes><id: 16 bytes>: the send jobs (jq/) and the dead
// letters (jf/). An entry's id in the API is the hex of its key after the
// prefix, so a listing resumes after an id and one read finds an entry.

// keyOfID parses an id of the admin API into its key under prefix.
func keyOfID(prefix, id string) ([]byte, bool) {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 8+16 {
		return nil, false
	}
	return append([]byte(prefix), b...), true
}

// idOfKey is the admin API's id of a key under prefix.
func idOfKey(prefix string, k []byte) string { return hex.EncodeToString(k[len(prefix):]) }

// page lists up to limit entries under prefix, in key order, from the one
// after the id after ("": from the start), each made by view; next is the
// id to list on from ("" at the end). bad is returned for an after that is
// no id.
func page[T any](ctx context.Context, store ExtReader, prefix, after string, limit int, bad error,
	view func(k, v []byte) (T, error)) (out []T, next string, err error) {
	from := []byte(prefix)
	if after != "" {
		k, ok := keyOfID(prefix, after)
		if !ok {
			return nil, "", bad
		}
		from = append(k, 0)
	}
	out = []T{}
	var last []byte
	err = store.ScanExt(ctx, from, endOf(prefix), func(k, v []byte) error {
		if _, _, ok := parseDueKey(prefix, k); !ok {
			return nil
		}
		if len(out) == limit {
			next = idOfKey(prefix, last)
			return errStop
		}
		t, err := view(k, v)
		if err != nil {
			return err
		}
		out = append(out, t)
		last = slices.Clone(k)
		return nil
	})
	if err == errStop {
		err = nil
	}
	return out, next, err
}

// entry reads the one entry with the given id under prefix, made by view;
// missing is returned when there is none.
func entry[T any](ctx context.Context, store ExtReader, prefix, id string, missing error,
	view func(k, v []byte) (*T, error)) (*T, error) {
	k, ok := keyOfID(prefix, id)
	if !ok {
		return nil, missing
	}
	var found *T
	err := store.ScanExt(ctx, k, append(slices.Clone(k), 0), func(k, v []byte) error {
		var err error
		found, err = view(k, slices.Clone(v))
		return err
	})
	if err == nil && found == nil {
		err = missing
	}
	return found, err
}
