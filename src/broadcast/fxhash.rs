//! A fast hasher for the registry's keys (channel unique ids): the
//! multiply-rotate hash rustc uses for its own tables ("FxHash"), a few
//! instructions per 8 bytes where the standard SipHash takes a few dozen.
//! It is not keyed, so it resists no chosen collisions: fit for ids that
//! Asterisk makes or that authenticated ARI clients choose, one lookup per
//! claim.

use std::hash::Hasher;

/// The odd constant FxHash multiplies by (from the golden ratio).
const SEED: u64 = 0x517c_c1b7_2722_0a95;

#[derive(Clone, Copy, Default)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        }
        let rest = chunks.remainder();
        // The last 1..7 bytes as one word, read in at most three loads
        // (no copy through a buffer).
        let tail = match rest.len() {
            0 => return,
            len if len >= 4 => {
                let low = u32::from_le_bytes(rest[..4].try_into().unwrap_or_default());
                let high = u32::from_le_bytes(rest[len - 4..].try_into().unwrap_or_default());
                u64::from(low) | u64::from(high) << 32
            }
            len => {
                u64::from(rest[0]) | u64::from(rest[len / 2]) << 8 | u64::from(rest[len - 1]) << 16
            }
        };
        self.add(tail);
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::hash::{BuildHasher, BuildHasherDefault};

    type FxBuild = BuildHasherDefault<FxHasher>;

    #[test]
    fn equal_keys_hash_alike_and_similar_ids_apart() {
        let build = FxBuild::default();
        assert_eq!(build.hash_one("1700000000.42"), build.hash_one("1700000000.42"));
        // Asterisk's unique ids differ in their last digits only.
        let hashes: HashSet<u64> = (0..10_000).map(|n| build.hash_one(format!("1764640000.{n}"))).collect();
        assert_eq!(hashes.len(), 10_000);
        // A prefix is not the same key ("a" vs "a\0"-padded words).
        assert_ne!(build.hash_one("abcdefgh"), build.hash_one("abcdefgh\0"));
        // Every tail length (1..7 bytes after the words) tells its bytes apart.
        for len in 1..=15 {
            let base = "x".repeat(len);
            let hashes: HashSet<u64> = (0..len)
                .map(|at| {
                    let mut changed = base.clone().into_bytes();
                    changed[at] = b'y';
                    build.hash_one(changed.as_slice())
                })
                .chain([build.hash_one(base.as_bytes())])
                .collect();
            assert_eq!(hashes.len(), len + 1, "length {len}");
        }
    }

    #[test]
    fn a_map_with_it_finds_what_it_holds() {
        let mut map: HashMap<String, usize, FxBuild> = HashMap::default();
        for n in 0..1000 {
            map.insert(format!("sbt1234_{n:06}_2"), n);
        }
        assert!((0..1000).all(|n| map.get(&format!("sbt1234_{n:06}_2")) == Some(&n)));
        assert_eq!(map.get("sbt1234_001000_2"), None);
    }
}
