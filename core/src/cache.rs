//! The per-worker cache of tokens that were found valid.
//!
//! Only positive answers are cached: a token file created now must work on the very next
//! request, and a flood of random tokens must not fill memory. Entries live at most `ttl_ms`
//! (the bound on revocation delay) and at most `capacity` of them exist; the least recently
//! used one makes room for a new one. Storage grows with use, so a large `capacity` costs
//! nothing until valid tokens fill it.

use std::num::NonZeroUsize;

use lru::LruCache;

/// The index's hash: fast, and randomly seeded per cache (nginx makes the cache in its master
/// at each configuration load, so the workers share a seed). Keys are only tokens that were
/// found valid (files the operator created), so an attacker cannot choose them to fill a
/// bucket anyway.
type KeyHasher = foldhash::fast::RandomState;

/// What the cache remembers about a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A token file's modification time, seconds since the epoch (for `max_age`).
    File { mtime: i64 },
    /// A verified signed token's end (`exp` + leeway), seconds since the epoch: every hit
    /// checks it, so a cached token is refused the moment it expires.
    Signed { expires_at: i64 },
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    entry: Entry,
    checked_at_ms: u64,
}

#[derive(Debug)]
pub struct TokenCache {
    /// Key is the directory's or signed rules' id (4 bytes, little endian) followed by the
    /// token. `None` when `ttl_ms` or `capacity` is 0: the cache is off.
    lru: Option<LruCache<Vec<u8>, Cached, KeyHasher>>,
    ttl_ms: u64,
}

/// Longest token kept: a signed token is the longer kind.
const MAX_TOKEN: usize = max(crate::token::MAX_LEN, crate::signed::MAX_LEN);

/// A key up to this long is built on the stack; a longer one (a large signed token) on the
/// heap: zeroing a buffer for the longest key on every look-up cost more than the look-up
/// itself (callgrind, docs/performance.md#signed-tokens).
const INLINE_KEY: usize = 4 + 512;

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

impl TokenCache {
    pub fn new(capacity: usize, ttl_ms: u64) -> TokenCache {
        let lru = NonZeroUsize::new(capacity)
            .filter(|_| ttl_ms > 0)
            .map(|capacity| {
                // Unbounded allocates nothing up front; `resize` then sets the bound.
                let mut lru = LruCache::unbounded_with_hasher(KeyHasher::default());
                lru.resize(capacity);
                lru
            });
        TokenCache { lru, ttl_ms }
    }

    pub fn len(&self) -> usize {
        self.lru.as_ref().map_or(0, LruCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh entry for `token` under id `dir` (a token directory's or signed rules'). The
    /// entry found becomes the most recently used even when it was checked `ttl_ms` or more
    /// ago and is not returned: the caller then looks the token up and refreshes the entry in
    /// place, or removes it.
    pub fn get(&mut self, dir: u32, token: &[u8], now_ms: u64) -> Option<Entry> {
        let lru = self.lru.as_mut()?;
        let cached = with_key(dir, token, |key| lru.get(key).copied())??;
        let fresh = now_ms.saturating_sub(cached.checked_at_ms) < self.ttl_ms;
        fresh.then_some(cached.entry)
    }

    /// Records that `token` was just found valid.
    pub fn insert(&mut self, dir: u32, token: &[u8], entry: Entry, now_ms: u64) {
        let Some(lru) = self.lru.as_mut() else {
            return;
        };
        let cached = Cached {
            entry,
            checked_at_ms: now_ms,
        };
        // A new key at capacity takes the least recently used entry's place.
        with_key(dir, token, |key| {
            *lru.get_or_insert_mut_ref(key, || cached) = cached;
        });
    }

    /// Forgets `token`, e.g. after its file was found gone or expired.
    pub fn remove(&mut self, dir: u32, token: &[u8]) {
        if let Some(lru) = self.lru.as_mut() {
            with_key(dir, token, |key| lru.pop(key));
        }
    }
}

/// Calls `f` with the key for `token` under `dir`; `None` for a token longer than any kept.
fn with_key<R>(dir: u32, token: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    if token.len() > MAX_TOKEN {
        return None;
    }
    let mut buf = [0u8; INLINE_KEY];
    if let Some(key) = make_key(&mut buf, dir, token) {
        return Some(f(key));
    }
    let mut key = Vec::with_capacity(4 + token.len());
    key.extend_from_slice(&dir.to_le_bytes());
    key.extend_from_slice(token);
    Some(f(&key))
}

/// The key in `buf`, or `None` when it does not fit.
fn make_key<'b>(buf: &'b mut [u8], dir: u32, token: &[u8]) -> Option<&'b [u8]> {
    let (id, rest) = buf.split_first_chunk_mut::<4>()?;
    *id = dir.to_le_bytes();
    rest.get_mut(..token.len())?.copy_from_slice(token);
    buf.get(..4 + token.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    const E: Entry = Entry::File { mtime: 7 };

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
    fn an_expired_entry_counts_as_used_and_is_refreshed_in_place() {
        let mut c = TokenCache::new(2, 1000);
        c.insert(0, b"t", E, 0);
        c.insert(0, b"u", E, 500);
        assert_eq!(c.get(0, b"t", 1000), None);
        c.insert(0, b"v", E, 1000); // evicts u: t was used more recently
        assert_eq!(c.get(0, b"u", 1000), None);
        c.insert(0, b"t", Entry::File { mtime: 9 }, 1000);
        assert_eq!(c.get(0, b"t", 1999), Some(Entry::File { mtime: 9 }));
        assert_eq!(c.len(), 2);
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
    }

    #[test]
    fn remove_forgets_and_frees_room() {
        let mut c = TokenCache::new(2, 1000);
        c.insert(0, b"a", E, 0);
        c.insert(0, b"b", E, 0);
        c.remove(0, b"b");
        assert_eq!(c.get(0, b"b", 1), None);
        c.insert(0, b"c", E, 1);
        assert!(c.get(0, b"a", 2).is_some(), "a survived: b's room was free");
        assert!(c.get(0, b"c", 2).is_some());
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn a_removed_then_reinserted_token_is_cached_again() {
        let mut c = TokenCache::new(2, 1000);
        c.insert(0, b"a", E, 0);
        c.remove(0, b"a");
        c.insert(0, b"b", E, 0);
        c.insert(0, b"a", E, 0);
        c.insert(0, b"c", E, 0); // evicts the least recently used entry, b
        assert!(c.get(0, b"a", 1).is_some());
        assert!(c.get(0, b"c", 1).is_some());
        assert!(c.get(0, b"b", 1).is_none());
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn insert_refreshes_an_existing_entry() {
        let mut c = TokenCache::new(2, 1000);
        c.insert(0, b"a", E, 0);
        c.insert(0, b"a", Entry::File { mtime: 9 }, 900);
        assert_eq!(c.get(0, b"a", 1500), Some(Entry::File { mtime: 9 }));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn overlong_keys_are_ignored() {
        let mut c = TokenCache::new(2, 1000);
        let over = [b'a'; crate::signed::MAX_LEN + 1];
        c.insert(0, &over, E, 0);
        assert!(c.is_empty());
        assert_eq!(c.get(0, &over, 0), None);
        let longest = [b'a'; crate::signed::MAX_LEN];
        c.insert(0, &longest, E, 0);
        assert_eq!(c.get(0, &longest, 0), Some(E));
    }

    #[test]
    fn keys_on_either_side_of_the_stack_buffer_work_alike() {
        let mut c = TokenCache::new(4, 1000);
        let inline = [b'a'; INLINE_KEY - 4];
        let heap = [b'a'; INLINE_KEY - 3];
        c.insert(0, &inline, E, 0);
        c.insert(0, &heap, Entry::File { mtime: 9 }, 0);
        assert_eq!(c.get(0, &inline, 1), Some(E));
        assert_eq!(c.get(0, &heap, 1), Some(Entry::File { mtime: 9 }));
        c.remove(0, &heap);
        assert_eq!(c.get(0, &heap, 1), None);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn signed_entries_keep_their_end_and_their_rules() {
        let mut c = TokenCache::new(4, 1000);
        let s = Entry::Signed {
            expires_at: 1_700_000_000,
        };
        let token = [b'x'; crate::signed::MAX_LEN];
        c.insert(0x8000_0000, &token, s, 0);
        assert_eq!(c.get(0x8000_0000, &token, 999), Some(s));
        assert_eq!(c.get(0x8000_0001, &token, 1), None, "other rules");
        assert_eq!(c.get(0, &token, 1), None, "a token directory's id");
        assert_eq!(c.get(0x8000_0000, &token, 1000), None, "ttl over");
        c.remove(0x8000_0000, &token);
        assert!(c.is_empty());
    }

    #[test]
    fn sequential_token_names_spread_over_the_table() {
        // hashbrown picks the slot from the low bits and a control byte from the top 7:
        // names that differ only at their end (session00001, ...) must vary in both. 10,000
        // random keys in 2^14 slots occupy about 7,500.
        let patterns: [fn(u32) -> String; 4] = [
            |i| format!("session{i:05}"),
            |i| format!("tok-{i:07}"),
            |i| format!("user{i:08}"),
            |i| format!("t{i:07}"),
        ];
        let hasher = KeyHasher::default();
        for name in patterns {
            let hashes: Vec<u64> = (0..10_000u32)
                .map(|i| with_key(0, name(i).as_bytes(), |key| hasher.hash_one(key)).unwrap())
                .collect();
            let slots: HashSet<u64> = hashes.iter().map(|h| h & ((1 << 14) - 1)).collect();
            let tops: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
            assert!(slots.len() > 7_000, "{}: {} slots", name(0), slots.len());
            assert!(tops.len() > 100, "{}: {} top values", name(0), tops.len());
        }
    }
}
