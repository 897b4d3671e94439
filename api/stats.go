package api

import "sync/atomic"

// Stats counts the uploads this API has handled since New.
type Stats struct {
	// UploadsAccepted counts uploads stored; UploadBytes adds up their images' sizes (the
	// image part, not the multipart body around it).
	UploadsAccepted, UploadBytes uint64
	// UploadsRejected counts upload requests that reached the handler, past authentication,
	// and stored nothing: not multipart, too large, not a valid image, a missing CSRF token,
	// or a server error on the way.
	UploadsRejected uint64
}

// uploadStats holds the counters behind Stats: atomic adds, one or two per upload.
type uploadStats struct {
	accepted, bytes, rejected atomic.Uint64
}

// stored counts an accepted upload of n bytes.
func (s *uploadStats) stored(n int64) {
	s.accepted.Add(1)
	s.bytes.Add(uint64(n))
}

// countRejected counts the upload as rejected when *err is set when it runs; the upload
// handler defers it on its named result.
func (s *uploadStats) countRejected(err *error) {
	if *err != nil {
		s.rejected.Add(1)
	}
}

// Stats returns the upload counters so far.
func (a *API) Stats() Stats {
	return Stats{
		UploadsAccepted: a.uploads.accepted.Load(),
		UploadBytes:     a.uploads.bytes.Load(),
		UploadsRejected: a.uploads.rejected.Load(),
	}
}
