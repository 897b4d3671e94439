package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tierpix/tierpix/store"
)

// EnvVersityGW names the versitygw binary (Versity's S3 gateway) that tests start as their S3
// server; `make test` installs it. Unset, the binary is looked for on PATH and in
// $(go env GOPATH)/bin.
const EnvVersityGW = "TIERPIX_VERSITYGW"

// S3Server is a real S3 server for a test: versitygw over a directory of its own, listening
// on 127.0.0.1 only, killed when the test ends. Stop and Start kill and restart it on the
// same address and data, for tests of an outage.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string

	bin, addr, dir string
	logs           *bytes.Buffer
	mu             sync.Mutex
	cmd            *exec.Cmd
}

// StartS3 starts an S3 server for the test. Without versitygw the test is skipped, except in
// CI (CI=true), where it fails: the S3 tests must never be skipped silently there.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	bin := versityGW()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("storetest: versitygw not found (set %s); CI must run the S3 tests", EnvVersityGW)
		}
		t.Skipf("storetest: versitygw not found; run `make test`, or go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	key := make([]byte, 12)
	rand.Read(key)
	s := &S3Server{
		Endpoint:  "http://" + addr,
		AccessKey: "tpx" + hex.EncodeToString(key[:4]),
		SecretKey: hex.EncodeToString(key),
		bin:       bin,
		addr:      addr,
		dir:       t.TempDir(),
		logs:      &bytes.Buffer{},
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.mu.Lock()
			t.Logf("versitygw log:\n%s", s.logs.String())
			s.mu.Unlock()
		}
	})
	s.Start(t)
	return s
}

// versityGW finds the binary: $TIERPIX_VERSITYGW, PATH, or where go install puts it.
func versityGW() string {
	if p := os.Getenv(EnvVersityGW); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	home, _ := os.UserHomeDir()
	for _, dir := range []string{os.Getenv("GOBIN"), filepath.Join(os.Getenv("GOPATH"), "bin"), filepath.Join(home, "go", "bin")} {
		p := filepath.Join(dir, "versitygw")
		if dir != "" && dir != "bin" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	return ""
}

// Start starts the server (again), on its address and data, and waits until it answers.
func (s *S3Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return
	}
	cmd := exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", s.addr, "posix", s.dir)
	cmd.Stdout, cmd.Stderr = lockedWriter{&s.mu, s.logs}, lockedWriter{&s.mu, s.logs}
	// Killed with the test binary, should it die before its cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		t.Fatalf("storetest: start versitygw: %v", err)
	}
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("storetest: versitygw did not answer on %s within 15s: %v", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server at once (SIGKILL), as a crash or a lost network would take it.
func (s *S3Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Client returns a client of the server, for tests that look into the bucket.
func (s *S3Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.addr, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewBucket creates a bucket with a fresh name and returns the name.
func (s *S3Server) NewBucket(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "tpx-" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("storetest: create bucket %s: %v", name, err)
	}
	return name
}

// Config is how the store reaches the server.
func (s *S3Server) Config() store.S3Config {
	return store.S3Config{Endpoint: s.Endpoint, Region: "us-east-1", PathStyle: true, AccessKey: s.AccessKey, SecretKey: s.SecretKey}
}

// Env is the server's part of tierpix's environment for originals in bucket, under the
// prefix "originals".
func (s *S3Server) Env(bucket string) map[string]string {
	return map[string]string{
		"TIERPIX_ORIGINALS":     "s3://" + bucket + "/originals",
		"TIERPIX_S3_ENDPOINT":   s.Endpoint,
		"TIERPIX_S3_REGION":     "us-east-1",
		"TIERPIX_S3_PATH_STYLE": "true",
		"AWS_ACCESS_KEY_ID":     s.AccessKey,
		"AWS_SECRET_ACCESS_KEY": s.SecretKey,
	}
}

// Keys lists the keys under prefix in bucket.
func (s *S3Server) Keys(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	for obj := range s.Client(t).ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("storetest: list %s/%s: %v", bucket, prefix, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	return keys
}

// WithS3 keeps the store's originals in a fresh bucket of srv, under the prefix "originals".
func WithS3(srv *S3Server, bucket string) Option {
	return func(c *store.Config) {
		c.Originals = fmt.Sprintf("s3://%s/originals", bucket)
		c.S3 = srv.Config()
	}
}

// Bucket is a bucket of an S3Server that a store keeps its originals in, under "originals/".
type Bucket struct {
	*S3Server
	Name string
}

// NewStoreBucket creates a fresh bucket on srv for a store's originals.
func NewStoreBucket(t testing.TB, srv *S3Server) *Bucket {
	return &Bucket{S3Server: srv, Name: srv.NewBucket(t)}
}

// Option keeps a store's originals in the bucket.
func (b *Bucket) Option() Option { return WithS3(b.S3Server, b.Name) }

// Key is the key of the original of id.
func (b *Bucket) Key(id string) string { return "originals/" + id }

// IDs lists the keys under originals/, without the prefix.
func (b *Bucket) IDs(t testing.TB) []string {
	t.Helper()
	var ids []string
	for _, k := range b.Keys(t, b.Name, "originals/") {
		ids = append(ids, strings.TrimPrefix(k, "originals/"))
	}
	return ids
}

// Put writes body as the object of id, as an upload whose row never came would leave it.
func (b *Bucket) Put(t testing.TB, id string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Client(t).PutObject(ctx, b.Name, b.Key(id), bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("storetest: put %s: %v", b.Key(id), err)
	}
}

// Stat returns the object of id's information; ok is false when there is none.
func (b *Bucket) Stat(t testing.TB, id string) (minio.ObjectInfo, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := b.Client(t).StatObject(ctx, b.Name, b.Key(id), minio.StatObjectOptions{})
	if minio.ToErrorResponse(err).Code == "NoSuchKey" {
		return info, false
	}
	if err != nil {
		t.Fatalf("storetest: stat %s: %v", b.Key(id), err)
	}
	return info, true
}

// EachOriginals runs fn as the subtests "sqlite", "postgres", "sqlite-s3" and "postgres-s3":
// each dialect with originals on disk (b is nil), then in a fresh bucket b of one S3 server
// started for the test.
func EachOriginals(t *testing.T, fn func(t *testing.T, s *store.Store, b *Bucket), opts ...Option) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t, opts...), nil) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t, opts...), nil) })
	srv := StartS3(t)
	t.Run("sqlite-s3", func(t *testing.T) {
		b := NewStoreBucket(t, srv)
		fn(t, SQLite(t, append(opts, b.Option())...), b)
	})
	t.Run("postgres-s3", func(t *testing.T) {
		b := NewStoreBucket(t, srv)
		fn(t, Postgres(t, append(opts, b.Option())...), b)
	})
}
