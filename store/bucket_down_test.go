package store

import (
	"net"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tierpix/tierpix"
)

// TestBucketDownOnNewsOnly: the client library reports a failure to reach the server after
// its retries and a last backoff, up to a second after its last attempt, by when a request
// begun later may have reached the server again. Only a failure newer than the latest answer
// takes the bucket for down, and only an answer newer than that failure ends it.
func TestBucketDownOnNewsOnly(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/b/originals/x",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	noSuchKey := minio.ErrorResponse{StatusCode: 404, Code: "NoSuchKey"}
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name     string
		steps    func(b *bucketOriginals)
		wantDown bool
	}{
		{"a failure", func(b *bucketOriginals) {
			b.fail("fetch original", "x", at(0), refused)
		}, true},
		{"a failure reported after an answer to a request begun later", func(b *bucketOriginals) {
			b.fail("ping bucket", "", at(10), nil)
			b.fail("fetch original", "x", at(0), refused)
		}, false},
		{"an answer to a request begun after the failure", func(b *bucketOriginals) {
			b.fail("fetch original", "x", at(0), refused)
			b.fail("ping bucket", "", at(10), nil)
		}, false},
		{"an error answer to a request begun after the failure", func(b *bucketOriginals) {
			b.fail("fetch original", "x", at(0), refused)
			b.fail("stat original", "y", at(10), noSuchKey)
		}, false},
		{"an answer to a request begun before the failure", func(b *bucketOriginals) {
			b.fail("fetch original", "x", at(10), refused)
			b.fail("put original", "y", at(0), nil)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &bucketOriginals{bucket: "b", endpoint: "127.0.0.1:1"}
			tt.steps(b)
			err := b.failFast()
			if got := err != nil; got != tt.wantDown {
				t.Fatalf("got taken for down %v (%v), want %v", got, err, tt.wantDown)
			}
			if err != nil && (tierpix.ErrorCode(err) != tierpix.EUNAVAILABLE || tierpix.ErrorRetryAfter(err) <= 0) {
				t.Fatalf("got %v, want EUNAVAILABLE with a Retry-After", err)
			}
		})
	}
}
