package storage

import (
	"sync"
	"time"
)

// maxCachedTrials bounds the final-trial cache; past it the cache starts
// over.
const maxCachedTrials = 1 << 18

// finalCache keeps trials that reached a final state. Such a trial never
// changes again (the store refuses every write to it, and the transaction
// that fails and retries a trial sets both at once), so it is read from the
// database once. An entry is used only when the trial's completion time
// still matches: ids start again from 1 when the schema is migrated down
// and up, by this process or another.
type finalCache struct {
	mu     sync.RWMutex
	trials map[int64]*Trial
	// prefixes holds, per study, its trials numbered 0 to k-1 when all of
	// them are final: Trials lists only the trials from number k-1 on
	// (the last to check that the prefix still belongs to the study). A
	// prefix is never modified, only replaced.
	prefixes map[int64][]*Trial
}

// prefix returns the study's cached final prefix.
func (c *finalCache) prefix(studyID int64) []*Trial {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.prefixes[studyID]
}

// setPrefix replaces the study's final prefix; nil drops it.
func (c *finalCache) setPrefix(studyID int64, p []*Trial) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p == nil {
		delete(c.prefixes, studyID)
		return
	}
	c.prefixes[studyID] = p
}

func newFinalCache() *finalCache {
	return &finalCache{trials: map[int64]*Trial{}, prefixes: map[int64][]*Trial{}}
}

// get returns the cached trial id if it completed at completed.
func (c *finalCache) get(id int64, completed time.Time) *Trial {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if t := c.trials[id]; t != nil && t.CompletedAt.Equal(completed) {
		return t
	}
	return nil
}

func (c *finalCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trials = map[int64]*Trial{}
	c.prefixes = map[int64][]*Trial{}
}

// put caches t if it is final.
func (c *finalCache) put(t *Trial) {
	if !t.State.Final() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.trials) >= maxCachedTrials {
		c.trials = map[int64]*Trial{}
		c.prefixes = map[int64][]*Trial{}
	}
	c.trials[t.ID] = t
}
