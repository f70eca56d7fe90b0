package storage

import (
	"container/list"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"
)

// bitmapCache is an LRU of decoded rollup bitmaps bounded by their size in
// bytes. Its key is the row version, which changes on every rewrite of a
// bucket, so an entry never goes stale: a rewritten bucket simply has a new
// key and the old entry ages out. Cached bitmaps are shared and must not
// be modified.
//
// It also remembers which bucket each entry belongs to, so that a query
// can tell PostgreSQL the version it already holds for a bucket and get
// the bitmap only when the bucket has changed since (known).
type bitmapCache struct {
	mu       sync.Mutex
	max, cur int64
	ll       *list.List
	items    map[int64]*list.Element
	buckets  map[bucketID]*list.Element // the newest cached version of each bucket
}

// bucketID names a rollup row: a bucket of rollup_totals (eventType "")
// or of rollup_types.
type bucketID struct {
	eventType string
	key       bucketKey
}

type bitmapEntry struct {
	version int64
	bucket  bucketID
	bm      *roaring.Bitmap
	size    int64
}

func newBitmapCache(maxBytes int64) *bitmapCache {
	return &bitmapCache{max: maxBytes, ll: list.New(), items: map[int64]*list.Element{}, buckets: map[bucketID]*list.Element{}}
}

// known is the version of bucket b whose bitmap is cached, or 0 (versions
// start at 1).
func (c *bitmapCache) known(b bucketID) int64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.buckets[b]; ok {
		return e.Value.(*bitmapEntry).version
	}
	return 0
}

func (c *bitmapCache) get(version int64) (*roaring.Bitmap, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[version]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*bitmapEntry).bm, true
	}
	return nil, false
}

// add stores bm, bucket b's bitmap at version; size is what it holds in
// memory.
func (c *bitmapCache) add(version int64, b bucketID, bm *roaring.Bitmap, size int64) {
	if c == nil || size > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[version]; ok {
		return
	}
	e := c.ll.PushFront(&bitmapEntry{version: version, bucket: b, bm: bm, size: size})
	c.items[version] = e
	if old, ok := c.buckets[b]; !ok || old.Value.(*bitmapEntry).version < version {
		c.buckets[b] = e
	}
	c.cur += size
	for c.cur > c.max {
		e := c.ll.Back()
		be := e.Value.(*bitmapEntry)
		c.ll.Remove(e)
		delete(c.items, be.version)
		if c.buckets[be.bucket] == e {
			delete(c.buckets, be.bucket)
		}
		c.cur -= be.size
	}
}

// reset empties the cache (benchmarks measure cold queries with it).
func (c *bitmapCache) reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ll.Init()
	c.items = map[int64]*list.Element{}
	c.buckets = map[bucketID]*list.Element{}
	c.cur = 0
}

// stats returns the number of entries and their bytes.
func (c *bitmapCache) stats() (int, int64) {
	if c == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items), c.cur
}

// dictCache remembers user_id → dictionary id. The dictionary only grows
// and never renumbers, so an entry is never wrong. Bounded by entries; when
// full it starts over (simple, and refilled by the next few queries).
type dictCache struct {
	mu  sync.RWMutex
	max int
	m   map[string]uint32
}

func newDictCache(max int) *dictCache { return &dictCache{max: max, m: map[string]uint32{}} }

func (c *dictCache) get(u string) (uint32, bool) {
	if c == nil {
		return 0, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	id, ok := c.m[u]
	return id, ok
}

func (c *dictCache) addAll(found map[string]uint32) {
	if c == nil || len(found) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(found) > c.max {
		c.m = make(map[string]uint32, len(found))
	}
	for u, id := range found {
		c.m[u] = id
	}
}

func (c *dictCache) reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = map[string]uint32{}
}
