package api

import "slices"

// seqPage is a page of images keyed on their sequence numbers, newest first, with DRF's
// links: the first page, the previous (newer) and the next (older) one, each null where there
// is none.
type seqPage[T any] struct {
	Results  []T     `json:"results"`
	First    *string `json:"first"`
	Previous *string `json:"previous"`
	Next     *string `json:"next"`
}

func (p seqPage[T]) nextPage() *string            { return p.Next }
func (p seqPage[T]) prevPage() (*string, *string) { return p.Previous, p.First }

// pageBySeq reads the newest-first page at cursor, one query whichever way: cursor 0 is the
// first page, a positive cursor the page of items older than it, a negative one the page of
// items newer than its absolute value (the previous page, read oldest first and turned
// round). older lists newest first below a sequence number (0: from the newest); newer lists
// oldest first above one. It returns the page and the cursors of its neighbours, 0 for none.
func pageBySeq[T any](cursor int64, limit int, seq func(*T) int64,
	older func(before int64, n int) ([]T, error), newer func(after int64, n int) ([]T, error),
) (items []T, prev, next int64, err error) {
	if cursor >= 0 {
		if items, err = older(cursor, limit+1); err != nil {
			return nil, 0, 0, err
		}
		if len(items) > limit {
			items = items[:limit]
			next = seq(&items[limit-1])
		}
		switch {
		case cursor == 0:
		case len(items) > 0:
			prev = -seq(&items[0])
		default:
			prev = -cursor // past the end: the page before is the one just newer than the cursor
		}
		return items, prev, next, nil
	}
	if items, err = newer(-cursor, limit+1); err != nil {
		return nil, 0, 0, err
	}
	more := len(items) > limit
	if more {
		items = items[:limit]
	}
	slices.Reverse(items)
	if len(items) > 0 {
		next = seq(&items[len(items)-1])
		if more {
			prev = -seq(&items[0])
		}
	}
	return items, prev, next, nil
}
