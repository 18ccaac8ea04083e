//! `TokenCache` (per-worker LRU with a TTL) against a model.
//!
//! A sequence of get/insert/remove operations, with a clock that only moves forward, runs on
//! the cache and on a plain model (a list of live entries, most recently used first).
//!
//! Properties: every answer equals the model's; in particular `get` never returns an entry
//! checked `ttl` or more ago (the revocation bound) nor one that was removed, never holds more
//! than `capacity` tokens, never caches a token longer than 4,096 bytes, and a disabled cache
//! (`ttl` or `capacity` 0) never answers.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use wcs_token_auth_core::cache::{Entry, TokenCache};
// The longest token the cache holds: a signed token's limit, above a token file's 255 bytes.
use wcs_token_auth_core::signed::MAX_LEN;

#[derive(Arbitrary, Debug)]
enum Op {
    Get { dir: u8, token: u8 },
    Insert { dir: u8, token: u8, mtime: i64 },
    Remove { dir: u8, token: u8 },
    Wait { ms: u16 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    ttl_ms: u16,
    ops: Vec<Op>,
}

/// A few short tokens (so that operations collide), one of the longest accepted length and
/// one too long.
fn token(i: u8) -> Vec<u8> {
    match i % 8 {
        6 => vec![b'a'; MAX_LEN],
        7 => vec![b'a'; MAX_LEN + 1],
        n => vec![b'a' + n; usize::from(i % 3) + 1],
    }
}

struct Model {
    /// (dir, token, entry, checked_at), most recently used first.
    live: Vec<(u32, Vec<u8>, Entry, u64)>,
    capacity: usize,
    ttl_ms: u64,
}

impl Model {
    fn enabled(&self) -> bool {
        self.capacity > 0 && self.ttl_ms > 0
    }
    fn find(&self, dir: u32, t: &[u8]) -> Option<usize> {
        self.live
            .iter()
            .position(|(d, k, _, _)| *d == dir && k == t)
    }
    fn get(&mut self, dir: u32, t: &[u8], now: u64) -> Option<Entry> {
        let i = self.find(dir, t).filter(|_| self.enabled())?;
        // Found is used, even when expired.
        let e = self.live.remove(i);
        let (entry, checked_at) = (e.2, e.3);
        self.live.insert(0, e);
        (now - checked_at < self.ttl_ms).then_some(entry)
    }
    fn insert(&mut self, dir: u32, t: &[u8], entry: Entry, now: u64) {
        if !self.enabled() || t.len() > MAX_LEN {
            return;
        }
        if let Some(i) = self.find(dir, t) {
            self.live.remove(i);
        } else if self.live.len() == self.capacity {
            self.live.pop();
        }
        self.live.insert(0, (dir, t.to_vec(), entry, now));
    }
    fn remove(&mut self, dir: u32, t: &[u8]) {
        if let Some(i) = self.find(dir, t) {
            self.live.remove(i);
        }
    }
}

fuzz_target!(|input: Input| {
    let capacity = usize::from(input.capacity % 6);
    let ttl_ms = u64::from(input.ttl_ms % 50);
    let mut cache = TokenCache::new(capacity, ttl_ms);
    let mut model = Model {
        live: Vec::new(),
        capacity,
        ttl_ms,
    };
    let mut now = 0u64;
    for op in input.ops.iter().take(200) {
        match *op {
            Op::Get { dir, token: t } => {
                let (dir, t) = (u32::from(dir % 3), token(t));
                let got = cache.get(dir, &t, now);
                assert_eq!(got, model.get(dir, &t, now), "{op:?} at {now}");
            }
            Op::Insert {
                dir,
                token: t,
                mtime,
            } => {
                let (dir, t) = (u32::from(dir % 3), token(t));
                // Both kinds of entry: the cache stores them alike.
                let entry = match mtime & 1 {
                    0 => Entry::File { mtime },
                    _ => Entry::Signed { expires_at: mtime },
                };
                cache.insert(dir, &t, entry, now);
                model.insert(dir, &t, entry, now);
            }
            Op::Remove { dir, token: t } => {
                let (dir, t) = (u32::from(dir % 3), token(t));
                cache.remove(dir, &t);
                model.remove(dir, &t);
            }
            Op::Wait { ms } => now += u64::from(ms % 64),
        }
        assert!(
            cache.len() <= capacity,
            "{} slots for capacity {capacity}",
            cache.len()
        );
    }
});
