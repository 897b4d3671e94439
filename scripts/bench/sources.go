package main

import (
	"bufio"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"

	"github.com/tierpix/tierpix/imaging/testimage"
)

// source is one of issue 4's source images.
type source struct {
	key   string // file name stem and table label
	label string
	w, h  int
	png   bool
	// imgproxyCPU is imgproxy's server CPU per request in issue 4's anchors (0: not held to
	// one, as for the PNG, which imgproxy wrote as JPEG).
	imgproxyCPU float64 // milliseconds
	// seeds is how many rows (hard links of this file) are seeded for renders that must each
	// be a first render. Generous: a run stops when they run out rather than repeat a link.
	seeds int
	// s3Seeds are seeded beyond seeds for the scenario with originals in S3 (s3Scenario).
	s3Seeds int
	// formatSeeds are seeded beyond those for the cold renders by format (formats.go): enough
	// for nine 6 s runs at 4 connections.
	formatSeeds int
}

// The sources of the anchors: JPEG Q90 at 24, 12 and 0.75 MP (about 7.5 MB, 3.9 MB and
// 0.25 MB), and a 2 MP RGB PNG of about 5.7 MB.
var sources = []source{
	{key: "24mp", label: "24 MP JPEG", w: 6000, h: 4000, imgproxyCPU: 120, seeds: 1500, formatSeeds: 1500},
	{key: "12mp", label: "12 MP JPEG", w: 4000, h: 3000, imgproxyCPU: 70, seeds: 2000, s3Seeds: 3 * 3 * 250, formatSeeds: 2500},
	{key: "075mp", label: "0.75 MP JPEG", w: 1000, h: 750, imgproxyCPU: 16, seeds: 8000, formatSeeds: 8000},
	{key: "2mp", label: "2 MP PNG", w: 1920, h: 1080, png: true, seeds: 2000, formatSeeds: 2500},
}

func (s source) file() string {
	if s.png {
		return s.key + ".png"
	}
	return s.key + ".jpg"
}

// genVersion names the generator in the cache directory; bump it when the pictures or their
// encoding change, so that a stale cache is not reused.
const genVersion = "v1"

// Grain amplitudes that give the anchors' file sizes with Go's encoders: JPEG Q90 of 12 MP at
// about 3.9 MB, and a 2 MP PNG at about 5.7 MB (that much grain leaves PNG's filters little).
const (
	jpegGrain = testimage.JPEGGrain
	pngGrain  = testimage.PNGGrain
)

// uploadSide is the side of the upload scenario's PNG: uncompressed RGB noise, so the file
// is just under the default 50 MiB upload cap (see makeUpload).
const uploadSide = 4170

// makeSources writes the sources (and the upload scenario's PNG) into dir unless a previous
// run left them there; the generator is deterministic, so cached files are the same bytes.
func makeSources(dir string) (map[string]string, string, error) {
	dir = filepath.Join(dir, genVersion)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("create sources dir: %w", err)
	}
	paths := map[string]string{}
	for _, s := range sources {
		path := filepath.Join(dir, s.file())
		paths[s.key] = path
		if _, err := os.Stat(path); err == nil {
			continue
		}
		logf("making %s (%dx%d)", s.file(), s.w, s.h)
		err := writeAtomically(path, func(f *bufio.Writer) error {
			if s.png {
				return png.Encode(f, photoRGB(s.w, s.h))
			}
			return jpeg.Encode(f, photo(s.w, s.h, jpegGrain), &jpeg.Options{Quality: 90})
		})
		if err != nil {
			return nil, "", fmt.Errorf("make %s: %w", s.file(), err)
		}
	}
	upload := filepath.Join(dir, "upload.png")
	if _, err := os.Stat(upload); err != nil {
		logf("making upload.png (%dx%d noise, stored)", uploadSide, uploadSide)
		if err := writeAtomically(upload, makeUpload); err != nil {
			return nil, "", fmt.Errorf("make upload.png: %w", err)
		}
	}
	return paths, upload, nil
}

// makeUpload writes RGB noise as an uncompressed PNG: 4170² pixels of 3 bytes plus framing is
// about 52.2 MB, just under the 50 MiB (52 428 800 byte) cap, so the upload is accepted.
func makeUpload(w *bufio.Writer) error {
	img := image.NewRGBA(image.Rect(0, 0, uploadSide, uploadSide))
	r := testimage.Rand(0x2545F4914F6CDD1D)
	for i := 0; i < len(img.Pix); i += 4 {
		v := r.Next()
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = byte(v), byte(v>>8), byte(v>>16), 0xff
	}
	enc := png.Encoder{CompressionLevel: png.NoCompression}
	return enc.Encode(w, img)
}

// writeAtomically writes path through a temp file and a rename, so an interrupted run never
// leaves a truncated source to be reused.
func writeAtomically(path string, write func(*bufio.Writer) error) error {
	tmp := fmt.Sprintf("%s.tmp%d", path, os.Getpid())
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	bw := bufio.NewWriterSize(f, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func photo(w, h int, grain int32) *image.YCbCr { return testimage.Photo(w, h, grain) }

func photoRGB(w, h int) *image.RGBA { return testimage.PhotoRGB(w, h, pngGrain) }
