package origin

import (
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
)

// Intermediates are made off the request path: a first render from the original answers with
// a plain thumbnail (what a cold request waits for costs what libvips' own thumbnail does),
// then queues the image's intermediate, which one goroutine makes when no render waits for a
// worker. Further sizes rendered after it are cheap; one asked for before it is rendered from
// the original as the first was. The intermediate is shared by every format of the image.

// interQueueLen bounds the intermediates waiting to be made. A burst of first renders beyond
// it drops the surplus (counted); the next render from the original of such an image queues
// it again.
const interQueueLen = 1024

// interIdleWait bounds how long an intermediate waits for the renders to let up before it is
// dropped: under renders that never pause it would otherwise wait for ever, holding its slot
// in the queue.
const interIdleWait = 30 * time.Second

// interPoll is how often a waiting intermediate looks whether the renders have let up.
const interPoll = 5 * time.Millisecond

// interJob is an intermediate to make: the image and its height.
type interJob struct {
	img    tierpix.Image
	height int
}

// queueIntermediate queues img's intermediate of height h, unless it is queued already or the
// queue is full.
func (o *Origin) queueIntermediate(img tierpix.Image, h int) {
	o.interMu.Lock()
	defer o.interMu.Unlock()
	if o.interQueued[img.ID] {
		return
	}
	select {
	case o.interJobs <- interJob{img: img, height: h}:
		o.interQueued[img.ID] = true
	default:
		o.interDropped.Add(1)
	}
}

// intermediateMaker makes the queued intermediates one at a time until Close.
func (o *Origin) intermediateMaker() {
	defer o.bg.Done()
	for {
		select {
		case <-o.done:
			return
		case j := <-o.interJobs:
			o.makeIntermediate(j)
			o.interMu.Lock()
			delete(o.interQueued, j.img.ID)
			o.interMu.Unlock()
		}
	}
}

// makeIntermediate makes one intermediate at low priority: it waits until no render is
// running or waiting (up to interIdleWait), then takes a worker slot and the decode budget
// as a render does, so that it never adds to what the renders themselves may use.
func (o *Origin) makeIntermediate(j interJob) {
	id := j.img.ID
	if _, _, ok := o.findIntermediate(id, j.height); ok {
		return // made meanwhile, here or by a node sharing the directory
	}
	deadline := time.Now().Add(interIdleWait)
	for o.pending.Load() > 0 {
		if time.Now().After(deadline) {
			o.interDropped.Add(1)
			return
		}
		select {
		case <-o.done:
			return
		case <-time.After(interPoll):
		}
	}
	p := o.pin(id)
	defer o.unpin(id, p)
	o.mu.Lock()
	purged := p.purged
	o.mu.Unlock()
	if purged {
		return // deleted since it was queued
	}
	src, release, err := o.original(j.img)
	if err != nil {
		if c := tierpix.ErrorCode(err); c != tierpix.ENOTFOUND {
			o.logger.Warn("make intermediate", "image", id, "err", err)
		}
		return
	}
	defer release()
	select {
	case o.workers <- struct{}{}:
	case <-o.done:
		return
	}
	defer func() { <-o.workers }()
	admitted, err := o.admit(src, int64(j.img.Width)*int64(j.img.Height))
	if err != nil {
		o.interDropped.Add(1)
		return
	}
	r, err := imaging.Intermediate(src, j.height)
	admitted()
	if err != nil {
		o.logger.Warn("make intermediate", "image", id, "height", j.height, "err", err)
		return
	}
	if tmp := o.writeCache(r.Body); tmp != "" {
		o.keepIntermediate(p, id, r.Height, int64(len(r.Body)), tmp)
	}
}
