package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

func envFunc(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// runCLI runs one tierpix command as main would and returns its stdout.
func runCLI(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	out, _, err := runCLI2(t, env, args...)
	return out, err
}

// runCLI2 runs one tierpix command as main would and returns its stdout and its stderr.
func runCLI2(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, envFunc(env), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestAdminCommands(t *testing.T) {
	env := map[string]string{"TIERPIX_DATA_DIR": t.TempDir()}

	out, err := runCLI(t, env, "migrate")
	if err != nil || !strings.Contains(out, "migrations applied (sqlite)") {
		t.Fatalf("migrate: got %q, %v; want migrations applied (sqlite)", out, err)
	}
	out, err = runCLI(t, env, "create-user", "-tier", "Premium", "carol")
	if err != nil {
		t.Fatalf("create-user: %v", err)
	}
	m := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("create-user: got %q, want a generated password", out)
	}
	if _, err := runCLI(t, env, "create-user", "carol"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("create-user twice: got %v, want an error saying the user exists", err)
	}
	if _, err := runCLI(t, env, "create-user", "-tier", "Nope", "dave"); err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Fatalf("create-user on a missing tier: got %v, want an error naming the tier", err)
	}
	if _, err := runCLI(t, env, "create-user", "-password", "short", "erin"); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("create-user with a short password: got %v, want an error about the password", err)
	}
	if out, err = runCLI(t, env, "set-tier", "carol", "enterprise"); err != nil || !strings.Contains(out, "Enterprise") {
		t.Fatalf("set-tier: got %q, %v; want carol on Enterprise", out, err)
	}
	if _, err := runCLI(t, env, "set-tier", "nobody", "Basic"); err == nil {
		t.Fatal("set-tier of a missing user: got nil error, want one")
	}
	tok, err := runCLI(t, env, "mint-token", "carol")
	if err != nil || !strings.HasPrefix(tok, "tpx_") {
		t.Fatalf("mint-token: got %q, %v; want a tpx_ token", tok, err)
	}

	// set-password is how an operator recovers a lost password: carol's first one goes.
	out, err = runCLI(t, env, "set-password", "carol")
	m2 := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out)
	if err != nil || m2 == nil || m2[1] == m[1] {
		t.Fatalf("set-password: got %q, %v; want a new generated password", out, err)
	}
	if _, err := runCLI(t, env, "set-password", "-password", "short", "carol"); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("set-password with a short password: got %v, want an error about the password", err)
	}

	// The server started on the same data dir accepts both the new password and the token,
	// and not the old password.
	s := startServer(t, map[string]string{"TIERPIX_DATA_DIR": env["TIERPIX_DATA_DIR"]})
	s.DataDir = env["TIERPIX_DATA_DIR"]
	for name, c := range map[string]*client{
		"password": s.basic(t, "carol", m2[1]),
		"token":    s.bearer(t, strings.TrimSpace(tok)),
	} {
		var me struct {
			Tier struct {
				Name string `json:"name"`
			} `json:"tier"`
		}
		resp, body := c.json("GET", "/api/me", nil, &me)
		wantStatus(t, "me with "+name, resp, body, http.StatusOK)
		if me.Tier.Name != "Enterprise" {
			t.Fatalf("me with %s: got tier %q, want Enterprise", name, me.Tier.Name)
		}
	}
	resp, body := s.basic(t, "carol", m[1]).json("GET", "/api/me", nil, nil)
	wantStatus(t, "me with the old password", resp, body, http.StatusUnauthorized)
}

func TestFirstStartCreatesAdmin(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, map[string]string{"TIERPIX_DATA_DIR": dir, "TIERPIX_ADMIN_USERNAME": "", "TIERPIX_ADMIN_PASSWORD": ""})
	m := regexp.MustCompile(`username: admin\s+password: (\S+)`).FindStringSubmatch(s.logs.String())
	if m == nil {
		t.Fatalf("first start: got output %q, want the admin's password", s.logs.String())
	}
	resp, body := s.basic(t, "admin", m[1]).json("GET", "/api/admin/tiers", nil, nil)
	wantStatus(t, "admin API with the printed password", resp, body, http.StatusOK)

	key := filepath.Join(dir, "signing.key")
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("signing key mode: got %o, want 600", perm)
	}
}

func TestSigningKeyRotation(t *testing.T) {
	const oldKey = "old-key-0123456789abcdefghijklmnopqrstuvwxyz"
	const newKey = "new-key-0123456789abcdefghijklmnopqrstuvwxyz"
	dir := t.TempDir()

	// Issue links under the old key.
	var link string
	func() {
		s := startServer(t, map[string]string{"TIERPIX_DATA_DIR": dir, "TIERPIX_SIGNING_KEY": oldKey})
		admin := s.basic(t, testAdmin, testAdminPW)
		var img imageJSON
		resp, body := admin.upload("a.jpg", gradientJPEG(t, 300, 200), &img)
		wantStatus(t, "upload", resp, body, http.StatusCreated)
		link = img.Links.Thumbnails[0].URL
	}()
	if _, err := os.Stat(filepath.Join(dir, "signing.key")); err == nil {
		t.Fatal("a signing key file was written although TIERPIX_SIGNING_KEY was set")
	}

	tests := []struct {
		name string
		keys string
		want int
	}{
		{"rotated: new key first, old kept", newKey + "," + oldKey, http.StatusOK},
		{"old key retired", newKey, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, map[string]string{"TIERPIX_DATA_DIR": dir, "TIERPIX_SIGNING_KEY": tt.keys})
			// The server's public URL changed with its port; the signed path did not.
			path := link[strings.Index(link, "/i/"):]
			resp, body := getLink(t, s.URL+path)
			wantStatus(t, "old link", resp, body, tt.want)
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad address", map[string]string{"TIERPIX_ADDR": "nonsense"}, "TIERPIX_ADDR"},
		{"bad public url", map[string]string{"TIERPIX_PUBLIC_URL": "ftp://x"}, "TIERPIX_PUBLIC_URL"},
		{"bad database url", map[string]string{"DATABASE_URL": "mysql://x"}, "DATABASE_URL"},
		{"half an admin", map[string]string{"TIERPIX_ADMIN_USERNAME": "root"}, "TIERPIX_ADMIN_PASSWORD"},
		{"bad number", map[string]string{"TIERPIX_MAX_UPLOAD_BYTES": "50MB"}, "TIERPIX_MAX_UPLOAD_BYTES"},
		{"bad log level", map[string]string{"TIERPIX_LOG_LEVEL": "loud"}, "TIERPIX_LOG_LEVEL"},
		{"zero disk cache", map[string]string{"TIERPIX_DISK_CACHE_BYTES": "0"}, "TIERPIX_DISK_CACHE_BYTES"},
		{"negative disk cache other than -1", map[string]string{"TIERPIX_DISK_CACHE_BYTES": "-2"}, "TIERPIX_DISK_CACHE_BYTES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(envFunc(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
	cfg, err := loadConfig(envFunc(nil))
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if cfg.Addr != "127.0.0.1:8080" || cfg.PublicURL != "http://127.0.0.1:8080" || cfg.MaxUploadBytes != 50<<20 || cfg.MaxPixels != 50_000_000 {
		t.Fatalf("defaults: got %+v", cfg)
	}
	if _, err := runCLI(t, map[string]string{"TIERPIX_SIGNING_KEY": "short", "TIERPIX_DATA_DIR": t.TempDir()}, "serve"); err == nil || !strings.Contains(err.Error(), "TIERPIX_SIGNING_KEY") {
		t.Fatalf("serve with a short key: got %v, want an error naming TIERPIX_SIGNING_KEY", err)
	}
}

// TestMigrateOriginals moves a running server's originals into a bucket with
// migrate-originals, and reads them back from the bucket byte for byte; it refuses without a
// bucket or a directory, and a second run finds everything there.
func TestMigrateOriginals(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, map[string]string{"TIERPIX_DATA_DIR": dir})
	admin := s.basic(t, testAdmin, testAdminPW)
	uploaded := map[string][]byte{}
	for _, w := range []int{300, 640, 1200} {
		body := gradientJPEG(t, w, w/2)
		var img imageJSON
		resp, rbody := admin.upload("a.jpg", body, &img)
		wantStatus(t, "upload", resp, rbody, http.StatusCreated)
		uploaded[img.ID] = body
	}

	if _, err := runCLI(t, map[string]string{"TIERPIX_DATA_DIR": dir}, "migrate-originals"); err == nil || !strings.Contains(err.Error(), "TIERPIX_ORIGINALS=s3://") {
		t.Fatalf("migrate-originals without a bucket: got %v, want a refusal naming TIERPIX_ORIGINALS=s3://", err)
	}
	srv := storetest.StartS3(t)
	bucket := srv.NewBucket(t)
	env := srv.Env(bucket)
	env["TIERPIX_DATA_DIR"] = dir
	if _, err := runCLI(t, env, "migrate-originals", "-from", filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("migrate-originals from a missing directory: got %v, want an error naming it", err)
	}

	// While the server runs on the directory, as the bulk of a move is copied.
	out, errOut, err := runCLI2(t, env, "migrate-originals", "-workers", "2")
	if err != nil {
		t.Fatalf("migrate-originals: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "3 copied") || !strings.Contains(out, "kept") || !strings.Contains(errOut, "3/3 files") {
		t.Fatalf("migrate-originals: got stdout %q and stderr %q, want 3 copied, the files kept, a progress line at 3/3", out, errOut)
	}
	for id := range uploaded {
		if _, err := os.Stat(filepath.Join(dir, "originals", id[:2], id)); err != nil {
			t.Fatalf("got the local original gone: %v", err)
		}
	}

	// A store on the bucket, as the server will be once moved, with the same rows.
	st, err := store.Open(t.Context(), store.Config{DataDir: dir, Originals: env["TIERPIX_ORIGINALS"], S3: srv.Config()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if got := srv.Keys(t, bucket, "originals/"); len(got) != len(uploaded) {
		t.Fatalf("got objects %v, want the %d originals", got, len(uploaded))
	}
	for id, body := range uploaded {
		img, err := st.FindImage(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		r, _, err := st.OpenOriginal(t.Context(), img)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("got %d bytes (%v) from the bucket for %s, want the %d uploaded", len(got), err, id, len(body))
		}
	}

	out, _, err = runCLI2(t, env, "migrate-originals")
	if err != nil || !strings.Contains(out, "0 copied") || !strings.Contains(out, "3 already there") {
		t.Fatalf("migrate-originals again: got %q, %v; want 0 copied, 3 already there", out, err)
	}
}
