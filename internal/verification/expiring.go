package verification

import (
	"container/list"
	"sync"
	"time"
)

// expiring is a bounded cache whose entries expire a fixed time after they were added: expired entries
// are dropped as new ones come in, not only when read, and the oldest goes first when it is full.
type expiring[V any] struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	now   func() time.Time
	order *list.List // of *expiringEntry[V], oldest first
	byKey map[string]*list.Element
}

type expiringEntry[V any] struct {
	key   string
	value V
	at    time.Time
}

func newExpiring[V any](max int, ttl time.Duration, now func() time.Time) *expiring[V] {
	return &expiring[V]{ttl: ttl, max: max, now: now, order: list.New(), byKey: map[string]*list.Element{}}
}

// get returns the value of key if it was added less than ttl ago.
func (c *expiring[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.byKey[key]
	if !ok {
		return zero, false
	}
	e := el.Value.(*expiringEntry[V])
	if c.now().Sub(e.at) >= c.ttl {
		c.drop(el)
		return zero, false
	}
	return e.value, true
}

// add stores value under key, dropping expired entries and, beyond max, the oldest.
func (c *expiring[V]) add(key string, value V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if el, ok := c.byKey[key]; ok {
		c.drop(el)
	}
	for el := c.order.Front(); el != nil; el = c.order.Front() {
		if c.order.Len() < c.max && now.Sub(el.Value.(*expiringEntry[V]).at) < c.ttl {
			break
		}
		c.drop(el)
	}
	c.byKey[key] = c.order.PushBack(&expiringEntry[V]{key: key, value: value, at: now})
}

// remove drops key.
func (c *expiring[V]) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		c.drop(el)
	}
}

func (c *expiring[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *expiring[V]) drop(el *list.Element) {
	delete(c.byKey, el.Value.(*expiringEntry[V]).key)
	c.order.Remove(el)
}
