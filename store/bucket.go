package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tierpix/tierpix"
)

// S3Config says how to reach the bucket of Config.Originals when it is an s3:// URL.
type S3Config struct {
	// Endpoint is the S3 server, as a URL (http://127.0.0.1:7070) or a host[:port] reached
	// over HTTPS; empty means AWS (the region's endpoint).
	Endpoint string
	// Region is the bucket's region; empty means us-east-1.
	Region string
	// PathStyle addresses the bucket in the path (endpoint/bucket/key) rather than as a
	// subdomain, as most servers other than AWS want.
	PathStyle bool
	// AccessKey and SecretKey (and SessionToken, if any) sign requests; when AccessKey is
	// empty the AWS credential chain the client library provides is used: the shared
	// credentials file, then the instance's or container's role (IAM, web identity).
	AccessKey, SecretKey, SessionToken string
	// Timeout bounds each request to the bucket, beyond one second per MiB it carries; zero
	// means DefaultS3Timeout.
	Timeout time.Duration
}

// DefaultS3Timeout is S3Config.Timeout's default.
const DefaultS3Timeout = 10 * time.Second

// bucketRetryAfter is the Retry-After of an answer that needed the bucket when it was down.
const bucketRetryAfter = 2 * time.Second

// downFor is how long the bucket is taken for down after a request failed to reach it:
// meanwhile requests fail at once with 503 instead of each waiting out its own retries. A
// failure counts only if no request begun after it has reached the server since: the client
// library reports a failure after its retries and a last backoff, a second or so after its
// last attempt, by which time the server may be back.
const downFor = time.Second

// ParseOriginals splits an s3://BUCKET[/PREFIX] location into the bucket and the key prefix
// (empty, or ending in "/"); ok is false for a location that is not an s3:// URL.
func ParseOriginals(loc string) (bucket, prefix string, ok bool, err error) {
	rest, found := strings.CutPrefix(loc, "s3://")
	if !found {
		return "", "", false, nil
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", true, fmt.Errorf("originals %q: no bucket after s3://", loc)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return bucket, prefix, true, nil
}

// bucketOriginals keeps originals as objects PREFIX{id} in an S3 bucket, and reads them through
// the node's originalCache.
type bucketOriginals struct {
	client    *minio.Client
	bucket    string
	prefix    string
	endpoint  string
	timeout   time.Duration
	cache     *originalCache
	downUntil atomic.Int64 // Unix nanoseconds; see downFor
	failedAt  atomic.Int64 // Unix nanoseconds: when the request whose failure set downUntil began
	reachedAt atomic.Int64 // Unix nanoseconds: when the latest request that reached the server began
	failures  atomic.Uint64

	sweepMu    sync.Mutex
	sweepAfter string // the key a sweep that ran out of time stopped at; see sweepTime
}

// sweepTime bounds one sweep's walk of the bucket's listing; the next sweep goes on where one
// that ran out of time stopped, so a bucket too large for one sweep is still swept whole.
const sweepTime = 10 * time.Minute

// openBucket makes the client and checks that the bucket is there and writable, so that a
// wrong name, endpoint or key is an error at start-up rather than a 503 on the first upload.
func openBucket(ctx context.Context, loc string, cfg S3Config, cache *originalCache) (*bucketOriginals, error) {
	bucket, prefix, _, err := ParseOriginals(loc)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultS3Timeout
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	host, secure := cfg.Endpoint, true
	switch {
	case host == "":
		host = "s3." + region + ".amazonaws.com"
	case strings.Contains(host, "://"):
		u, err := url.Parse(host)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
			return nil, fmt.Errorf("S3 endpoint %q: want http://host[:port] or https://host[:port]", cfg.Endpoint)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.FileAWSCredentials{},
			&credentials.IAM{Client: &http.Client{Timeout: 5 * time.Second}},
		})
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Region:       region,
		BucketLookup: lookup,
		Transport:    bucketTransport(cfg.Timeout),
		MaxRetries:   3,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 client for %s: %w", host, err)
	}
	b := &bucketOriginals{client: client, bucket: bucket, prefix: prefix, endpoint: host, timeout: cfg.Timeout, cache: cache}
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// bucketTransport bounds the connection's steps: a dial, a TLS handshake and the wait for a
// response's headers each fail well within a request's deadline when the server is gone.
func bucketTransport(timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   64,
	}
}

func (b *bucketOriginals) String() string {
	return "s3://" + b.bucket + "/" + b.prefix + " at " + b.endpoint
}

// check confirms that the bucket exists and takes a write and a delete, within the timeout.
func (b *bucketOriginals) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	ok, err := b.client.BucketExists(ctx, b.bucket)
	if err != nil {
		return fmt.Errorf("originals in %s: %w", b, describeBucketError(err))
	}
	if !ok {
		return fmt.Errorf("originals in %s: the bucket %q does not exist; create it first", b, b.bucket)
	}
	key := b.prefix + ".tierpix-write-check"
	if _, err := b.client.PutObject(ctx, b.bucket, key, strings.NewReader("ok"), 2, minio.PutObjectOptions{}); err != nil {
		return fmt.Errorf("originals in %s: writing a test object: %w", b, describeBucketError(err))
	}
	if err := b.client.RemoveObject(ctx, b.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("originals in %s: deleting the test object: %w", b, describeBucketError(err))
	}
	return nil
}

// ping asks the server for the bucket, within ctx.
func (b *bucketOriginals) ping(ctx context.Context) error {
	began := time.Now()
	ok, err := b.client.BucketExists(ctx, b.bucket)
	if err == nil && !ok {
		b.reached(began)
		err = fmt.Errorf("the bucket %q does not exist", b.bucket)
	}
	return b.fail("ping bucket", "", began, err)
}

// describeBucketError words a failure to reach the bucket for an operator.
func describeBucketError(err error) error {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken":
		return fmt.Errorf("access refused (%s): check the credentials and the bucket's policy: %w", resp.Code, err)
	case "NoSuchBucket":
		return fmt.Errorf("no such bucket: %w", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer in time (is the endpoint right and the server up?): %w", err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("unreachable (is the endpoint right and the server up?): %w", err)
	}
	return err
}

func (b *bucketOriginals) key(id string) string { return b.prefix + id }

// deadline is the context of one request carrying size bytes: the timeout plus a second per MiB.
func (b *bucketOriginals) deadline(ctx context.Context, size int64) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.timeout+time.Duration(size>>20)*time.Second)
}

// failFast refuses at once while the bucket is taken for down (see downFor).
func (b *bucketOriginals) failFast() error {
	if time.Now().UnixNano() < b.downUntil.Load() {
		return tierpix.Unavailable(bucketRetryAfter, "The storage of originals is unavailable; try again shortly.")
	}
	return nil
}

// reached records that a request begun at began got an answer from the server: failures of
// requests begun before it are old news (see downFor), and so is the bucket being taken for
// down, if the failure that said so began before it too.
func (b *bucketOriginals) reached(began time.Time) {
	storeLater(&b.reachedAt, began.UnixNano())
	if began.UnixNano() > b.failedAt.Load() {
		b.downUntil.Store(0)
	}
}

// down takes the bucket for down for downFor after a request begun at began failed to reach
// the server, unless a request begun since has reached it.
func (b *bucketOriginals) down(began time.Time) {
	if began.UnixNano() < b.reachedAt.Load() {
		return
	}
	storeLater(&b.failedAt, began.UnixNano())
	b.downUntil.Store(time.Now().Add(downFor).UnixNano())
}

// storeLater stores t in a unless a holds a later time already.
func storeLater(a *atomic.Int64, t int64) {
	for {
		at := a.Load()
		if t <= at || a.CompareAndSwap(at, t) {
			return
		}
	}
}

// fail translates the outcome of a request begun at began: nil records that the server was
// reached; a missing object is ENOTFOUND, a full server ESTORAGE (507), and anything else, the
// server unreachable, slow, refusing or failing, EUNAVAILABLE (503 with Retry-After), with the
// cause kept for the log. A failure to reach the server takes it for down for downFor, unless
// a request begun since has reached it.
func (b *bucketOriginals) fail(op, id string, began time.Time, err error) error {
	if err == nil {
		b.reached(began)
		return nil
	}
	var e *tierpix.Error
	if errors.As(err, &e) {
		return err
	}
	resp := minio.ToErrorResponse(err)
	if resp.StatusCode != 0 {
		b.reached(began)
	}
	switch {
	case resp.Code == "NoSuchKey":
		return fmt.Errorf("%w (%s %s: %w)", errNoOriginal(), op, id, err)
	case resp.Code == "XMinioStorageFull" || resp.StatusCode == http.StatusInsufficientStorage || isFull(err):
		return fmt.Errorf("%w (%s %s: %w)", tierpix.Errorf(tierpix.ESTORAGE, "The storage of originals is full; the upload was not stored."), op, id, err)
	}
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		// A local file (an upload's, a fetch's) failed, not the bucket.
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	b.failures.Add(1)
	if resp.StatusCode == 0 && !errors.Is(err, context.Canceled) {
		b.down(began)
	}
	return fmt.Errorf("%w (%s %s in %s: %w)", tierpix.Unavailable(bucketRetryAfter, "The storage of originals is unavailable; try again shortly."), op, id, b, err)
}

// put uploads the file at path as the original of id: one request, or a multipart upload for
// a large file, with the body's MD5 for the server to check (each part's, in a multipart
// upload) and its SHA-256 in the object's metadata (x-amz-meta-sha256) for anyone to verify.
func (b *bucketOriginals) put(ctx context.Context, id, path string, size int64, sum string) error {
	if err := b.failFast(); err != nil {
		return err
	}
	ctx, cancel := b.deadline(ctx, size)
	defer cancel()
	began := time.Now()
	_, err := b.client.FPutObject(ctx, b.bucket, b.key(id), path, minio.PutObjectOptions{
		ContentType:    "application/octet-stream",
		UserMetadata:   map[string]string{"sha256": sum},
		SendContentMd5: true,
		PartSize:       multipartPartSize,
	})
	return b.fail("put original", id, began, err)
}

// multipartPartSize is the part size of a multipart upload: files larger go in parts.
const multipartPartSize = 16 << 20

// hashFile returns the length and the hex SHA-256 of the file at path, read through one
// descriptor so that the two agree.
func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func (b *bucketOriginals) stage(ctx context.Context, id, tmp string, size int64) error {
	_, sum, err := hashFile(tmp)
	if err != nil {
		return err
	}
	if err := b.put(ctx, id, tmp, size, sum); err != nil {
		return err
	}
	b.cache.adopt(id, tmp, size)
	return nil
}

// remove deletes the objects, up to 1 000 a request, and forgets their cached copies. The
// objects that stay are reported with ErrOriginalKept, for the sweep.
func (b *bucketOriginals) remove(ctx context.Context, ids []string) error {
	b.cache.forget(ids)
	if len(ids) == 0 {
		return nil
	}
	if err := b.failFast(); err != nil {
		return fmt.Errorf("%w: %d originals: %v", ErrOriginalKept, len(ids), err)
	}
	ctx, cancel := b.deadline(ctx, 0)
	defer cancel()
	began := time.Now()
	if len(ids) == 1 {
		if err := b.fail("remove original", ids[0], began, b.client.RemoveObject(ctx, b.bucket, b.key(ids[0]), minio.RemoveObjectOptions{})); err != nil {
			return fmt.Errorf("%w: %v", ErrOriginalKept, err)
		}
		return nil
	}
	objs := make(chan minio.ObjectInfo, len(ids))
	for _, id := range ids {
		objs <- minio.ObjectInfo{Key: b.key(id)}
	}
	close(objs)
	var errs []error
	for e := range b.client.RemoveObjects(ctx, b.bucket, objs, minio.RemoveObjectsOptions{}) {
		if minio.ToErrorResponse(e.Err).Code == "NoSuchKey" {
			continue
		}
		errs = append(errs, fmt.Errorf("%w: %v", ErrOriginalKept, b.fail("remove original", strings.TrimPrefix(e.ObjectName, b.prefix), began, e.Err)))
	}
	return errors.Join(errs...)
}

// local returns the cached copy, fetching it on a miss.
func (b *bucketOriginals) local(ctx context.Context, id string, size int64) (string, func(), error) {
	if !tierpix.ValidImageID(id) {
		return "", nil, errNoOriginal()
	}
	return b.cache.get(ctx, id, size,
		func() (context.Context, context.CancelFunc) { return b.deadline(context.Background(), size) },
		func(ctx context.Context, f *os.File) error {
			if err := b.failFast(); err != nil {
				return err
			}
			began := time.Now()
			obj, err := b.client.GetObject(ctx, b.bucket, b.key(id), minio.GetObjectOptions{})
			if err != nil {
				return b.fail("fetch original", id, began, err)
			}
			defer obj.Close()
			if _, err := io.Copy(f, obj); err != nil {
				if isFull(err) {
					return FileError(err, "write fetched original")
				}
				return b.fail("fetch original", id, began, err)
			}
			return b.fail("fetch original", id, began, nil)
		})
}

// open streams the cached copy, or the object itself on a miss (without caching it: a
// download of the original is no sign that renders will follow). The object's request runs on
// the transfer's deadline, cancelled when the body is closed.
func (b *bucketOriginals) open(ctx context.Context, id string, size int64) (io.ReadCloser, int64, error) {
	if !tierpix.ValidImageID(id) {
		return nil, 0, errNoOriginal()
	}
	if f, ok := b.cache.open(id, size); ok {
		return f, size, nil
	}
	if err := b.failFast(); err != nil {
		return nil, 0, err
	}
	rctx, cancel := b.deadline(context.WithoutCancel(ctx), size)
	began := time.Now()
	obj, err := b.client.GetObject(rctx, b.bucket, b.key(id), minio.GetObjectOptions{})
	if err != nil {
		cancel()
		return nil, 0, b.fail("open original", id, began, err)
	}
	info, err := obj.Stat() // makes the request, so a missing object or a down server is known before the answer starts
	if err := b.fail("open original", id, began, err); err != nil {
		obj.Close()
		cancel()
		return nil, 0, err
	}
	return &objectBody{Object: obj, cancel: cancel}, info.Size, nil
}

// objectBody is an object being streamed; Close ends its request.
type objectBody struct {
	*minio.Object
	cancel context.CancelFunc
}

func (o *objectBody) Close() error {
	err := o.Object.Close()
	o.cancel()
	return err
}

func (b *bucketOriginals) stat(ctx context.Context, id string, size int64) (int64, error) {
	if !tierpix.ValidImageID(id) {
		return 0, errNoOriginal()
	}
	if f, ok := b.cache.open(id, size); ok {
		f.Close()
		return size, nil
	}
	if err := b.failFast(); err != nil {
		return 0, err
	}
	ctx, cancel := b.deadline(ctx, 0)
	defer cancel()
	began := time.Now()
	info, err := b.client.StatObject(ctx, b.bucket, b.key(id), minio.StatObjectOptions{})
	if err := b.fail("stat original", id, began, err); err != nil {
		return 0, err
	}
	return info.Size, nil
}

// sweep lists the prefix a page at a time (the client asks for 1 000 keys a request and hands
// them over as they come), so the listing is never held whole, for at most sweepTime.
func (b *bucketOriginals) sweep(parent context.Context, cutoff time.Time, orphans func([]string) ([]string, error)) (int, error) {
	b.sweepMu.Lock()
	defer b.sweepMu.Unlock()
	ctx, cancel := context.WithTimeout(parent, sweepTime)
	defer cancel()
	removed := 0
	flush := func(batch []string) error {
		if len(batch) == 0 {
			return nil
		}
		gone, err := orphans(batch)
		if err != nil {
			return err
		}
		if err := b.remove(parent, gone); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		removed += len(gone)
		return nil
	}
	var batch []string
	last := ""
	began := time.Now()
	for obj := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix, StartAfter: b.sweepAfter}) {
		if obj.Err != nil {
			if parent.Err() == nil && ctx.Err() != nil {
				// Out of time: the next sweep goes on after the last key seen.
				b.sweepAfter = last
				return removed, flush(batch)
			}
			return removed, fmt.Errorf("sweep: list %s: %w", b, b.fail("list originals", "", began, obj.Err))
		}
		last = obj.Key
		id := strings.TrimPrefix(obj.Key, b.prefix)
		if !tierpix.ValidImageID(id) || !obj.LastModified.Before(cutoff) {
			continue
		}
		batch = append(batch, id)
		if len(batch) == sweepBatch {
			if err := flush(batch); err != nil {
				return removed, err
			}
			batch = batch[:0]
		}
	}
	if err := flush(batch); err != nil {
		return removed, err
	}
	b.sweepAfter = ""
	return removed, nil
}
