package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Source is the source of the S3 scenario: the 12 MP render.
const s3Source = "12mp"

// sourceOf returns the source with key.
func sourceOf(key string) source {
	for _, s := range sources {
		if s.key == key {
			return s
		}
	}
	panic("no source " + key)
}

// s3Rounds is how many times the three configurations of the S3 scenario run, interleaved.
const s3Rounds = 3

// s3Scenario measures a cold render of source s with its original in an S3 bucket (Versity's
// gateway on 127.0.0.1, over the bench's disk), once fetched on the request and once already
// in the node's cache of originals, against the same render from the local disk (b.a), in
// interleaved rounds of 4 connections. Every request is a first render of a distinct image.
//
// The bucket holds one object put through S3 and hard links of its file under the other keys
// (the gateway keeps an object as a file with its metadata in extended attributes, which a
// hard link shares): thousands of distinct objects without writing gigabytes. "Already in the
// node's cache" is the state a previous fetch leaves: the file in <data dir>/originals-cache,
// here a hard link made before the node starts, which the cache takes in at start.
func (b *bench) s3Scenario(ctx context.Context, s source) error {
	if b.o.versitygw == "" {
		return fmt.Errorf("the S3 scenario needs -versitygw (scripts/bench.sh installs it)")
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	root := filepath.Join(b.work, "s3")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	access, secret := "bench", "bench-secret-"+newID()
	gw, err := start("versitygw", exec.Command(b.o.versitygw, "--access", access, "--secret", secret, "--port", addr, "posix", root),
		filepath.Join(b.work, "versitygw.log"))
	if err != nil {
		return err
	}
	b.servers = append(b.servers, gw)
	mc, err := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err = mc.ListBuckets(ctx); err == nil {
			break
		}
		if gw.exited() || time.Now().After(deadline) {
			return fmt.Errorf("versitygw did not answer on %s: %w\n%s", addr, err, gw.tail())
		}
	}
	const bucket = "bench"
	if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}

	perRun := 250
	if b.o.quick {
		perRun = 100
	}
	var local, first, cached [s3Rounds][]string
	for r := range s3Rounds {
		local[r], first[r], cached[r] = b.take(s.key, perRun), b.take(s.key, perRun), b.take(s.key, perRun)
		if len(cached[r]) < perRun {
			return fmt.Errorf("the S3 scenario needs %d more seeded %s images", 3*perRun*s3Rounds, s.label)
		}
	}
	src := originalPath(b.dataDir, first[0][0])
	if _, err := mc.FPutObject(ctx, bucket, "originals/"+first[0][0], src, minio.PutObjectOptions{}); err != nil {
		return fmt.Errorf("put an original: %w", err)
	}
	objFile := filepath.Join(root, bucket, "originals", first[0][0])
	s3Data := filepath.Join(b.work, "data-s3")
	cacheDir := filepath.Join(s3Data, "originals-cache")
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return err
	}
	for r := range s3Rounds {
		for _, id := range slices.Concat(first[r], cached[r]) {
			if id == first[0][0] {
				continue
			}
			if err := os.Link(objFile, filepath.Join(root, bucket, "originals", id)); err != nil {
				return fmt.Errorf("link an object (is the gateway's layout still bucket/key?): %w", err)
			}
		}
		for _, id := range cached[r] {
			if err := os.Link(src, filepath.Join(cacheDir, id)); err != nil {
				return err
			}
		}
	}

	logf("cold renders, %s: original on local disk, in S3 (fetched), in S3 (cached on the node); %d rounds", s.label, s3Rounds)
	if err := b.restart(ctx, "tierpix-"+s.key+"-local"); err != nil {
		return err
	}
	s3, err := b.startTierpix(ctx, "tierpix-s3",
		"TIERPIX_DATA_DIR="+s3Data,
		"TIERPIX_ORIGINALS=s3://"+bucket+"/originals",
		"TIERPIX_S3_ENDPOINT=http://"+addr,
		"TIERPIX_S3_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID="+access,
		"AWS_SECRET_ACCESS_KEY="+secret,
		// Room for every original of the scenario (hard links: no disk), so that none of the
		// cached row's is evicted by the fetched row's before its turn.
		"TIERPIX_ORIGINALS_CACHE_BYTES=68719476736")
	if err != nil {
		return err
	}
	dur := coldDur / 2
	run := func(in *instance, ids []string) (measured, error) {
		links := make([]string, len(ids))
		for i, id := range ids {
			links[i] = b.link(id, thumbHeight)
		}
		return b.measure(ctx, in.target(), wrkSpec{URL: in.base + "/", Conns: 4, Duration: dur, Mode: "once"}, links)
	}
	var ml, mf, mc2 []measured
	fetches := map[*[]measured]float64{}
	for r := range s3Rounds {
		for _, c := range []struct {
			in  *instance
			ids []string
			out *[]measured
		}{{b.a, local[r], &ml}, {s3, first[r], &mf}, {s3, cached[r], &mc2}} {
			before, _ := fetchMetric(ctx, s3.client, "tierpix_originals_fetches_total")
			m, err := run(c.in, c.ids)
			if err != nil {
				return err
			}
			after, _ := fetchMetric(ctx, s3.client, "tierpix_originals_fetches_total")
			if c.in == s3 {
				fetches[c.out] += after - before
			}
			*c.out = append(*c.out, m)
		}
	}
	base := fmt.Sprintf("cold render, %s → h%d", s.label, thumbHeight)
	rl := combine(base+", original on local disk", 4, ml)
	rl.Notes = append(rl.Notes, "interleaved with the two S3 rows below")
	rows := []row{rl}
	for _, c := range []struct {
		name string
		runs []measured
		out  *[]measured
	}{{"original in S3, fetched on the request", mf, &mf}, {"original in S3, in the node's cache", mc2, &mc2}} {
		r := combine(base+", "+c.name, 4, c.runs)
		var p50, rps []float64
		for i := range c.runs {
			p50 = append(p50, float64(c.runs[i].wrk.P50)/float64(ml[i].wrk.P50))
			rps = append(rps, c.runs[i].wrk.ReqPerSec/ml[i].wrk.ReqPerSec)
		}
		r.Notes = append(r.Notes, fmt.Sprintf("vs local disk, round by round: p50 %s (median %sx), req/s %s (median %sx)",
			ratios(p50), sig3(median(p50)), ratios(rps), sig3(median(rps))))
		r.Notes = append(r.Notes, "CPU is tierpix's alone, not the gateway's",
			fmt.Sprintf("/metrics: %.0f originals fetched from the bucket", fetches[c.out]))
		rows = append(rows, r)
	}
	s3.srv.stop()
	b.rows = append(b.rows, rows...)
	return nil
}

func ratios(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = sig3(x) + "x"
	}
	return strings.Join(s, ", ")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// fetchMetric reads one sample without labels from a tierpix's /metrics.
func fetchMetric(ctx context.Context, c *client, name string) (float64, error) {
	samples, ok, err := scrape(ctx, c)
	if err != nil {
		return 0, err
	}
	v, found := samples[name]
	if !ok || !found {
		return 0, fmt.Errorf("no %s in /metrics", name)
	}
	return v, nil
}
