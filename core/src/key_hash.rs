//! The hash of the token cache's index: a word-at-a-time multiply-rotate hash, several times
//! cheaper per lookup than the standard library's SipHash.
//!
//! SipHash's keyed randomness defends a table whose keys an attacker chooses. The cache's keys
//! are only tokens that were found valid (files the operator created), so an attacker cannot
//! fill a bucket; probing with arbitrary tokens costs one bucket group each, as with SipHash.
//! The final mix in `finish` spreads names that differ only at their end (session00001, ...).

use std::hash::{BuildHasherDefault, Hasher};

/// The odd multiplier of FxHash (rustc's hasher), a good 64-bit mixer.
const K: u64 = 0x517c_c1b7_2722_0a95;

#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher {
    hash: u64,
}

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // A multiply only carries upwards: without this final mix the low bits, which pick
        // the table slot, would depend only on the last word's low bytes, and tokens that
        // differ in their last characters (session00001, session00002, ...) would share a
        // slot.
        let h = self.hash ^ (self.hash >> 33);
        let h = h.wrapping_mul(K);
        h ^ (h >> 33)
    }
}

pub type BuildKeyHasher = BuildHasherDefault<KeyHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    fn hash(b: &[u8]) -> u64 {
        BuildKeyHasher::default().hash_one(b)
    }

    #[test]
    fn equal_keys_hash_equal_and_near_keys_differ() {
        assert_eq!(hash(b"t0000001"), hash(b"t0000001"));
        let keys: Vec<String> = (0..100_000).map(|i| format!("t{i:07}")).collect();
        let hashes: HashSet<u64> = keys.iter().map(|k| hash(k.as_bytes())).collect();
        assert_eq!(
            hashes.len(),
            keys.len(),
            "no collisions among sequential tokens"
        );
        // The tail past the last full word counts, and so does the length.
        assert_ne!(hash(b"abcdefgh1"), hash(b"abcdefgh2"));
        assert_ne!(hash(b"a"), hash(b"a\0"));
    }

    #[test]
    fn the_top_bits_used_by_the_table_spread() {
        // hashbrown takes its control byte from the top 7 bits: they must vary.
        let tops: HashSet<u64> = (0..1000u32)
            .map(|i| hash(format!("t{i:07}").as_bytes()) >> 57)
            .collect();
        assert!(tops.len() > 100, "{} distinct top-7-bit values", tops.len());
    }

    #[test]
    fn the_low_bits_used_for_the_slot_spread_for_sequential_names() {
        // hashbrown picks the slot from the low bits. Keys are the directory id (4 bytes)
        // then the token; names that differ only at their end must not share slots. 10,000
        // random keys in 2^14 slots occupy about 7,500.
        let patterns: [fn(u32) -> String; 4] = [
            |i| format!("session{i:05}"),
            |i| format!("tok-{i:07}"),
            |i| format!("user{i:08}"),
            |i| format!("t{i:07}"),
        ];
        for name in patterns {
            let slots: HashSet<u64> = (0..10_000u32)
                .map(|i| {
                    let mut key = vec![0u8; 4];
                    key.extend_from_slice(name(i).as_bytes());
                    hash(&key) & ((1 << 14) - 1)
                })
                .collect();
            assert!(
                slots.len() > 7_000,
                "{}: {} distinct slots",
                name(0),
                slots.len()
            );
        }
    }
}
