//! The per-worker cache of tokens that were found valid.
//!
//! Only positive answers are cached: a token file created now must work on the very next
//! request, and a flood of random tokens must not fill memory. Entries live at most `ttl_ms`
//! (the bound on revocation delay) and at most `capacity` of them exist; the least recently
//! used one makes room for a new one.

use std::collections::HashMap;
use std::rc::Rc;

use crate::key_hash::BuildKeyHasher;

/// Slot index; `NIL` ends the recency list.
type Idx = u32;
const NIL: Idx = Idx::MAX;

/// What the cache remembers about a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Modification time of the token file, seconds since the epoch (for `max_age`).
    pub mtime: i64,
}

#[derive(Debug)]
struct Slot {
    key: Rc<[u8]>,
    entry: Entry,
    checked_at_ms: u64,
    /// False once removed: the slot waits at the old end of the list to be reused.
    live: bool,
    newer: Idx,
    older: Idx,
}

#[derive(Debug)]
pub struct TokenCache {
    /// Key is the directory id (4 bytes, little endian) followed by the token.
    index: HashMap<Rc<[u8]>, Idx, BuildKeyHasher>,
    slots: Vec<Slot>,
    newest: Idx,
    oldest: Idx,
    capacity: usize,
    ttl_ms: u64,
}

/// Longest key: directory id and a token of `token::MAX_LEN` bytes.
const MAX_KEY: usize = 4 + crate::token::MAX_LEN;

impl TokenCache {
    pub fn new(capacity: usize, ttl_ms: u64) -> TokenCache {
        TokenCache {
            index: HashMap::default(),
            slots: Vec::new(),
            newest: NIL,
            oldest: NIL,
            capacity: capacity.min(NIL as usize),
            ttl_ms,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn enabled(&self) -> bool {
        self.ttl_ms > 0 && self.capacity > 0
    }

    /// A fresh entry for `token` in directory `dir`, made the most recently used.
    pub fn get(&mut self, dir: u32, token: &[u8], now_ms: u64) -> Option<Entry> {
        if !self.enabled() {
            return None;
        }
        let mut buf = [0u8; MAX_KEY];
        let key = make_key(&mut buf, dir, token)?;
        let idx = *self.index.get(key)?;
        let slot = &self.slots[idx as usize];
        if now_ms.saturating_sub(slot.checked_at_ms) >= self.ttl_ms {
            return None;
        }
        let entry = slot.entry;
        if self.newest != idx {
            self.unlink(idx);
            self.push_newest(idx);
        }
        Some(entry)
    }

    /// Records that `token` was just found valid.
    pub fn insert(&mut self, dir: u32, token: &[u8], entry: Entry, now_ms: u64) {
        if !self.enabled() {
            return;
        }
        let mut buf = [0u8; MAX_KEY];
        let Some(key) = make_key(&mut buf, dir, token) else {
            return;
        };
        if let Some(&idx) = self.index.get(key) {
            let slot = &mut self.slots[idx as usize];
            slot.entry = entry;
            slot.checked_at_ms = now_ms;
            self.unlink(idx);
            self.push_newest(idx);
            return;
        }
        let key: Rc<[u8]> = Rc::from(key);
        let idx = if self.slots.len() < self.capacity {
            self.slots.push(Slot {
                key: key.clone(),
                entry,
                checked_at_ms: now_ms,
                live: true,
                newer: NIL,
                older: NIL,
            });
            (self.slots.len() - 1) as Idx
        } else {
            // Reuse the least recently used slot.
            let idx = self.oldest;
            self.unlink(idx);
            let slot = &mut self.slots[idx as usize];
            if slot.live {
                self.index.remove(&slot.key);
            }
            slot.live = true;
            slot.key = key.clone();
            slot.entry = entry;
            slot.checked_at_ms = now_ms;
            idx
        };
        self.index.insert(key, idx);
        self.push_newest(idx);
    }

    /// Forgets `token`, e.g. after its file was found gone or expired. The slot stays
    /// allocated but becomes the first to be reused.
    pub fn remove(&mut self, dir: u32, token: &[u8]) {
        let mut buf = [0u8; MAX_KEY];
        let Some(key) = make_key(&mut buf, dir, token) else {
            return;
        };
        if let Some(idx) = self.index.remove(key) {
            self.slots[idx as usize].live = false;
            self.unlink(idx);
            self.push_oldest(idx);
        }
    }

    fn unlink(&mut self, idx: Idx) {
        let (newer, older) = {
            let s = &self.slots[idx as usize];
            (s.newer, s.older)
        };
        match newer {
            NIL => self.newest = older,
            n => self.slots[n as usize].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.slots[o as usize].newer = newer,
        }
    }

    fn push_newest(&mut self, idx: Idx) {
        let old_newest = self.newest;
        {
            let s = &mut self.slots[idx as usize];
            s.newer = NIL;
            s.older = old_newest;
        }
        match old_newest {
            NIL => self.oldest = idx,
            n => self.slots[n as usize].newer = idx,
        }
        self.newest = idx;
    }

    fn push_oldest(&mut self, idx: Idx) {
        let old_oldest = self.oldest;
        {
            let s = &mut self.slots[idx as usize];
            s.older = NIL;
            s.newer = old_oldest;
        }
        match old_oldest {
            NIL => self.newest = idx,
            o => self.slots[o as usize].older = idx,
        }
        self.oldest = idx;
    }
}

fn make_key<'b>(buf: &'b mut [u8; MAX_KEY], dir: u32, token: &[u8]) -> Option<&'b [u8]> {
    let len = 4 + token.len();
    let key = buf.get_mut(..len)?;
    key[..4].copy_from_slice(&dir.to_le_bytes());
    key[4..].copy_from_slice(token);
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: Entry = Entry { mtime: 7 };

    #[test]
    fn remembers_until_ttl() {
        let mut c = TokenCache::new(10, 1000);
        assert_eq!(c.get(0, b"t", 0), None);
        c.insert(0, b"t", E, 100);
        assert_eq!(c.get(0, b"t", 100), Some(E));
        assert_eq!(c.get(0, b"t", 1099), Some(E));
        assert_eq!(c.get(0, b"t", 1100), None);
    }

    #[test]
    fn a_hit_does_not_extend_the_ttl() {
        let mut c = TokenCache::new(10, 1000);
        c.insert(0, b"t", E, 0);
        assert!(c.get(0, b"t", 900).is_some());
        assert!(c.get(0, b"t", 1000).is_none());
    }

    #[test]
    fn directories_are_separate() {
        let mut c = TokenCache::new(10, 1000);
        c.insert(1, b"t", E, 0);
        assert_eq!(c.get(2, b"t", 1), None);
        assert_eq!(c.get(1, b"t", 1), Some(E));
    }

    #[test]
    fn zero_ttl_or_capacity_disables() {
        for mut c in [TokenCache::new(10, 0), TokenCache::new(0, 1000)] {
            c.insert(0, b"t", E, 0);
            assert_eq!(c.get(0, b"t", 0), None);
            assert!(c.is_empty());
        }
    }

    #[test]
    fn evicts_least_recently_used_and_stays_bounded() {
        let mut c = TokenCache::new(3, 1_000_000);
        c.insert(0, b"a", E, 0);
        c.insert(0, b"b", E, 0);
        c.insert(0, b"c", E, 0);
        assert!(c.get(0, b"a", 1).is_some()); // a is now the newest; b the oldest
        c.insert(0, b"d", E, 2);
        assert!(c.get(0, b"b", 3).is_none());
        for t in [&b"a"[..], b"c", b"d"] {
            assert!(c.get(0, t, 3).is_some());
        }
        for i in 0..10_000u32 {
            c.insert(0, &i.to_le_bytes(), E, 4);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.index.len(), 3);
    }

    #[test]
    fn remove_forgets_and_frees_the_slot_first() {
        let mut c = TokenCache::new(2, 1000);
        c.insert(0, b"a", E, 0);
        c.insert(0, b"b", E, 0);
        c.remove(0, b"b");
        assert_eq!(c.get(0, b"b", 1), None);
        c.insert(0, b"c", E, 1);
        assert!(
            c.get(0, b"a", 2).is_some(),
            "a survived, b's slot was reused"
        );
        assert!(c.get(0, b"c", 2).is_some());
        assert_eq!(c.index.len(), 2);
    }

    #[test]
    fn a_removed_then_reinserted_token_survives_reuse_of_its_old_slot() {
        let mut c = TokenCache::new(2, 1000);
        c.insert(0, b"a", E, 0);
        c.remove(0, b"a");
        c.insert(0, b"b", E, 0);
        c.insert(0, b"a", E, 0); // the cache is full: a takes its own dead slot back
        c.insert(0, b"c", E, 0); // evicts the least recently used live entry, b
        assert!(c.get(0, b"a", 1).is_some());
        assert!(c.get(0, b"c", 1).is_some());
        assert!(c.get(0, b"b", 1).is_none());
        assert_eq!(c.index.len(), 2);
    }

    #[test]
    fn insert_refreshes_an_existing_entry() {
        let mut c = TokenCache::new(2, 1000);
        c.insert(0, b"a", E, 0);
        c.insert(0, b"a", Entry { mtime: 9 }, 900);
        assert_eq!(c.get(0, b"a", 1500), Some(Entry { mtime: 9 }));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn overlong_keys_are_ignored() {
        let mut c = TokenCache::new(2, 1000);
        c.insert(0, &[b'a'; 300], E, 0);
        assert!(c.is_empty());
        assert_eq!(c.get(0, &[b'a'; 300], 0), None);
    }
}
