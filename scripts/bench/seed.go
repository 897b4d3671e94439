package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// client talks to a tierpix over HTTP.
type client struct {
	base string // http://127.0.0.1:port
	http *http.Client
}

func newClient(base string) *client {
	return &client{base: base, http: &http.Client{Timeout: 5 * time.Minute}}
}

// do sends a request and decodes a JSON answer into out (when not nil), failing unless the
// status is want.
func (c *client) do(ctx context.Context, method, path string, auth func(*http.Request), body io.Reader, contentType string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != nil {
		auth(req)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: got status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// get fetches url (absolute) and returns the body, failing unless the status is 200.
func (c *client) get(ctx context.Context, url string) ([]byte, error) {
	b, _, err := c.getAccepting(ctx, url, "")
	return b, err
}

// getAccepting is get with an Accept header (none when accept is ""), and returns the
// answer's header too: which format a thumbnail link answers depends on Accept.
func (c *client) getAccepting(ctx context.Context, url, accept string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: got status %d, want 200: %.300s", url, resp.StatusCode, b)
	}
	return b, resp.Header, nil
}

func basicAuth(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// createUser makes a user through the admin API and mints an API token for them.
func (c *client) createUser(ctx context.Context, admin func(*http.Request), name, tier string) (string, error) {
	body, _ := json.Marshal(map[string]string{"username": name, "password": "bench-password-" + name, "tier": tier})
	if err := c.do(ctx, http.MethodPost, "/api/admin/users", admin, bytes.NewReader(body), "application/json", http.StatusCreated, nil); err != nil {
		return "", err
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/admin/users/"+name+"/tokens", admin, nil, "", http.StatusCreated, &tok); err != nil {
		return "", err
	}
	return tok.Token, nil
}

// uploaded is the part of the API's image the bench uses.
type uploaded struct {
	ID        string `json:"id"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	SizeBytes int64  `json:"size_bytes"`
}

// upload sends the file at path as multipart field "image", streaming it, and returns the
// image and how long the request took.
func (c *client) upload(ctx context.Context, auth func(*http.Request), path string) (uploaded, time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return uploaded{}, 0, err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("image", filepath.Base(path))
		if err == nil {
			_, err = io.Copy(part, f)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	var img uploaded
	begin := time.Now()
	err = c.do(ctx, http.MethodPost, "/api/images", auth, pr, mw.FormDataContentType(), http.StatusCreated, &img)
	return img, time.Since(begin), err
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns an image id shaped like the store's (24 characters of a-z, 2-7).
func newID() string {
	b := make([]byte, 15)
	rand.Read(b)
	return idEncoding.EncodeToString(b)
}

// originalPath is where the store keeps an image's original: originals/{id[0:2]}/{id} under
// the data dir (store.Store.OriginalPath). seedCopies checks it against a real upload first,
// so a change of layout fails the bench loudly rather than seeding files tierpix never reads.
func originalPath(dataDir, id string) string {
	return filepath.Join(dataDir, "originals", id[:2], id)
}

// db is the bench's own connection to tierpix's PostgreSQL database.
type db struct{ conn *pgx.Conn }

func openDB(ctx context.Context, url string) (*db, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return &db{conn: conn}, nil
}

func (d *db) ownerID(ctx context.Context, username string) (int64, error) {
	var id int64
	if err := d.conn.QueryRow(ctx, `SELECT id FROM users WHERE username = $1`, username).Scan(&id); err != nil {
		return 0, fmt.Errorf("find user %s: %w", username, err)
	}
	return id, nil
}

// seedCopies inserts n image rows for the owner of the uploaded image up, each with a new id
// and an original that is a hard link of up's original: n distinct images with the same
// bytes, so that every request for one of them is a first render of the same work. It
// returns the new ids, newest last.
func (d *db) seedCopies(ctx context.Context, dataDir string, up uploaded, format string, n int) ([]string, error) {
	src := originalPath(dataDir, up.ID)
	if _, err := os.Stat(src); err != nil {
		return nil, fmt.Errorf("the uploaded original is not at %s (has the store's layout changed? update originalPath): %w", src, err)
	}
	var owner int64
	var created int64
	err := d.conn.QueryRow(ctx, `SELECT owner_id, created_at FROM images WHERE id = $1`, up.ID).Scan(&owner, &created)
	if err != nil {
		return nil, fmt.Errorf("find uploaded image %s: %w", up.ID, err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newID()
		dst := originalPath(dataDir, ids[i])
		if err := os.Mkdir(filepath.Dir(dst), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create shard: %w", err)
		}
		if err := os.Link(src, dst); err != nil {
			return nil, fmt.Errorf("link original: %w", err)
		}
	}
	_, err = d.conn.Exec(ctx, `INSERT INTO images (id, owner_id, name, format, width, height, size_bytes, created_at)
		SELECT x.id, $2, 'bench-' || x.n || '.' || $3, $3, $4, $5, $6, $7 + x.n
		FROM unnest($1::text[]) WITH ORDINALITY AS x(id, n)`,
		ids, owner, format, up.Width, up.Height, up.SizeBytes, created)
	if err != nil {
		return nil, fmt.Errorf("insert %d image rows: %w", n, err)
	}
	return ids, nil
}

// seedMany inserts n image rows for username straight in SQL (no originals: the list scenario
// never opens them). Ids are 24 characters of the store's alphabet made from md5 of a per-call
// salt and the row number, so they are distinct and valid.
func (d *db) seedMany(ctx context.Context, username string, n int) error {
	owner, err := d.ownerID(ctx, username)
	if err != nil {
		return err
	}
	salt := newID()
	_, err = d.conn.Exec(ctx, `INSERT INTO images (id, owner_id, name, format, width, height, size_bytes, created_at)
		SELECT translate(substr(md5($3 || g::text), 1, 24), '0189', 'wxyz'), $1, 'seed-' || g || '.jpg', 'jpeg',
			1000, 750, 250000, (extract(epoch FROM now()) * 1000000)::bigint - $2 + g
		FROM generate_series(1, $2::bigint) AS g`, owner, n, salt)
	if err != nil {
		return fmt.Errorf("insert %d rows for %s: %w", n, username, err)
	}
	return nil
}

func (d *db) analyze(ctx context.Context) error {
	_, err := d.conn.Exec(ctx, `ANALYZE images`)
	return err
}

func (d *db) version(ctx context.Context) string {
	var v string
	if err := d.conn.QueryRow(ctx, `SHOW server_version`).Scan(&v); err != nil {
		return "unknown"
	}
	return v
}

// statementsAvailable reports whether pg_stat_statements is loaded (bench.sh preloads it in
// its throwaway cluster), creating the extension when needed.
func (d *db) statementsAvailable(ctx context.Context) bool {
	if _, err := d.conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return false
	}
	_, err := d.conn.Exec(ctx, `SELECT pg_stat_statements_reset()`)
	return err == nil
}

// statements counts the statements run in this database since the last reset, leaving out
// the bench's own.
func (d *db) statements(ctx context.Context) (int64, error) {
	var n int64
	err := d.conn.QueryRow(ctx, `SELECT coalesce(sum(s.calls), 0)::bigint FROM pg_stat_statements s
		JOIN pg_database db ON db.oid = s.dbid
		WHERE db.datname = current_database() AND s.query NOT ILIKE '%pg_stat_statements%'`).Scan(&n)
	return n, err
}

func (d *db) resetStatements(ctx context.Context) error {
	_, err := d.conn.Exec(ctx, `SELECT pg_stat_statements_reset()`)
	return err
}

// describeDB is a database URL without credentials, for the report.
func describeDB(url string) string {
	if i := strings.Index(url, "@"); i > 0 {
		if j := strings.Index(url, "://"); j > 0 && j < i {
			return url[:j+3] + url[i+1:]
		}
	}
	return url
}
