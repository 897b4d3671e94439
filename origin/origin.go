// Package origin serves signed image links: verify, authorize against the owner's current
// tier, then answer from memory, from disk, or from one render per variant at a time.
//
// SKELETON: the exported API below is fixed; the bodies are to be written.
package origin

import (
	"context"
	"log/slog"
	"time"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/signing"
)

// Store is what the origin needs from persistence.
type Store interface {
	FindImageForServing(ctx context.Context, id string) (tierpix.Image, tierpix.Tier, error)
	OriginalPath(id string) string
}

// Config tunes the caches and the render pool. Zero values take the defaults.
type Config struct {
	CacheDir         string        // disk cache of rendered variants; required
	MemoryCacheBytes int64         // ristretto budget; default 256 MiB
	MetadataTTL      time.Duration // how long image and tier lookups are cached; default 2s (tier changes apply within 5s)
	RenderWorkers    int           // renders at once; default runtime.NumCPU()
	RenderQueue      int           // renders waiting for a worker before 503; default 64
	MaxAge           time.Duration // Cache-Control max-age of permanent links; default 1h
	Now              func() time.Time
}

// Origin is the image-serving half of the server.
type Origin struct{}

// New returns an Origin.
func New(cfg Config, st Store, signer *signing.Signer, logger *slog.Logger) (*Origin, error) {
	panic("unimplemented")
}

// Register adds the origin's routes (GET and HEAD /i/...) to r.
func (o *Origin) Register(r *router.Router) { panic("unimplemented") }

// Purge forgets everything cached about image id: metadata, memory and disk variants. The API
// calls it when an image or its owner is deleted.
func (o *Origin) Purge(id string) { panic("unimplemented") }

// Close releases the caches.
func (o *Origin) Close() { panic("unimplemented") }
