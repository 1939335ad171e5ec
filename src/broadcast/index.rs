//! The registry's index from channel id to slot: open addressing with
//! linear probing over cells that hold each key's full hash and its slot.
//! The keys themselves stay in the slots (the index never copies them), so
//! a look-up hashes the id once, compares 64-bit hashes along the probe and
//! the id's bytes only where the hash matches: a claim, answered by one
//! look-up, costs a fraction of a general-purpose map's.
//!
//! Removal shifts the following cells back (no tombstones), so probes stay
//! short however many broadcasts come and go. The table doubles when half
//! full and never shrinks: it is as large as the most broadcasts ever live
//! at once needed.

use std::hash::Hasher;

use super::fxhash::FxHasher;

#[derive(Clone, Copy)]
struct Cell {
    hash: u64,
    /// The slot plus one; 0 marks an empty cell.
    slot_plus_one: usize,
}

const EMPTY: Cell = Cell { hash: 0, slot_plus_one: 0 };

#[derive(Default)]
pub struct Index {
    cells: Vec<Cell>,
    len: usize,
}

/// The hash a key is filed under: FxHash over its length and its 8-byte
/// words, the last word read overlapping the one before (ids are rarely a
/// whole number of words, and one load is cheaper than a tail loop).
pub fn hash_of(key: &[u8]) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write_usize(key.len());
    if key.len() < 8 {
        hasher.write(key);
        return hasher.finish();
    }
    let mut words = key.chunks_exact(8);
    for word in &mut words {
        hasher.write_u64(u64::from_le_bytes(word.try_into().unwrap_or_default()));
    }
    if !words.remainder().is_empty() {
        let last: [u8; 8] = key[key.len() - 8..].try_into().unwrap_or_default();
        hasher.write_u64(u64::from_le_bytes(last));
    }
    hasher.finish()
}

/// Whether two keys are equal, compared a word at a time in place (ids are
/// short: a call to `memcmp` would cost more than the comparison).
pub fn same_key(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() < 8 {
        return a == b;
    }
    let word = |bytes: &[u8], at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    let last = a.len() - 8;
    let mut at = 0;
    while at < last {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    word(a, last) == word(b, last)
}

impl Index {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where a probe for `hash` starts: the top bits (FxHash's last step
    /// is a multiply, which mixes into the high bits best).
    fn home(&self, hash: u64) -> usize {
        let bits = self.cells.len().trailing_zeros();
        (hash >> (64 - bits)) as usize
    }

    fn next(&self, cell: usize) -> usize {
        (cell + 1) & (self.cells.len() - 1)
    }

    /// Walks the probe sequence of `hash` to the first occupied cell `hit`
    /// accepts; None at an empty cell.
    fn probe(&self, hash: u64, mut hit: impl FnMut(Cell) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mut at = self.home(hash);
        loop {
            let cell = self.cells[at];
            if cell.slot_plus_one == 0 {
                return None;
            }
            if hit(cell) {
                return Some(at);
            }
            at = self.next(at);
        }
    }

    /// The slot filed under `hash` whose key `is_key` accepts.
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(usize) -> bool) -> Option<usize> {
        let at = self.probe(hash, |cell| cell.hash == hash && is_key(cell.slot_plus_one - 1))?;
        Some(self.cells[at].slot_plus_one - 1)
    }

    /// Files `slot` under `hash` (the caller has checked its key is not in).
    pub fn insert(&mut self, hash: u64, slot: usize) {
        if (self.len + 1) * 2 > self.cells.len() {
            self.grow();
        }
        let mut at = self.home(hash);
        while self.cells[at].slot_plus_one != 0 {
            at = self.next(at);
        }
        self.cells[at] = Cell { hash, slot_plus_one: slot + 1 };
        self.len += 1;
    }

    /// Removes the entry of `slot` filed under `hash`; false if none.
    pub fn remove(&mut self, hash: u64, slot: usize) -> bool {
        let Some(at) = self.probe(hash, |cell| cell.slot_plus_one == slot + 1) else { return false };
        // Backward shift: move up every following cell that may sit in the
        // hole (its home is not strictly between the hole and itself).
        let mut hole = at;
        let mut next = self.next(hole);
        while self.cells[next].slot_plus_one != 0 {
            let home = self.home(self.cells[next].hash);
            let distance_to_next = next.wrapping_sub(home) & (self.cells.len() - 1);
            let distance_to_hole = hole.wrapping_sub(home) & (self.cells.len() - 1);
            if distance_to_hole < distance_to_next {
                self.cells[hole] = self.cells[next];
                hole = next;
            }
            next = self.next(next);
        }
        self.cells[hole] = EMPTY;
        self.len -= 1;
        true
    }

    fn grow(&mut self) {
        let capacity = (self.cells.len() * 2).max(16);
        let old = std::mem::replace(&mut self.cells, vec![EMPTY; capacity]);
        self.len = 0;
        for cell in old.into_iter().filter(|cell| cell.slot_plus_one != 0) {
            self.insert(cell.hash, cell.slot_plus_one - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    /// Keys kept by slot, as the registry keeps them.
    struct Model {
        index: Index,
        keys: Vec<Option<Vec<u8>>>,
    }

    impl Model {
        fn find(&self, key: &[u8]) -> Option<usize> {
            self.index.find(hash_of(key), |slot| self.keys[slot].as_deref() == Some(key))
        }
    }

    #[test]
    fn finds_what_it_holds_through_growth_collisions_and_removals() {
        let mut model = Model { index: Index::default(), keys: Vec::new() };
        let mut reference: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut rng = SmallRng::seed_from_u64(5);
        for step in 0..20_000 {
            // Few distinct keys, so inserts and removals of the same keys
            // mix and clusters form and break up.
            let key = format!("1764640000.{}", rng.random_range(0..300)).into_bytes();
            match reference.get(&key).copied() {
                Some(slot) if rng.random_bool(0.6) => {
                    assert!(model.index.remove(hash_of(&key), slot), "step {step}");
                    model.keys[slot] = None;
                    reference.remove(&key);
                }
                Some(_) => {}
                None => {
                    let slot = model.keys.iter().position(Option::is_none).unwrap_or_else(|| {
                        model.keys.push(None);
                        model.keys.len() - 1
                    });
                    model.keys[slot] = Some(key.clone());
                    model.index.insert(hash_of(&key), slot);
                    reference.insert(key, slot);
                }
            }
            if step % 997 == 0 {
                for n in 0..300 {
                    let key = format!("1764640000.{n}").into_bytes();
                    assert_eq!(model.find(&key), reference.get(&key).copied(), "step {step}, key {n}");
                }
            }
            assert_eq!(model.index.len(), reference.len());
        }
    }

    #[test]
    fn keys_compare_and_hash_by_every_byte() {
        for len in 0..40 {
            let key: Vec<u8> = (0..len).map(|n| b'a' + (n % 26) as u8).collect();
            assert!(same_key(&key, &key.clone()));
            assert_eq!(hash_of(&key), hash_of(&key.clone()));
            for at in 0..len {
                let mut other = key.clone();
                other[at] = b'#';
                assert!(!same_key(&key, &other), "length {len}, byte {at}");
                assert_ne!(hash_of(&key), hash_of(&other), "length {len}, byte {at}");
            }
            let mut longer = key.clone();
            longer.push(b'a');
            assert!(!same_key(&key, &longer));
            assert_ne!(hash_of(&key), hash_of(&longer));
        }
    }

    #[test]
    fn equal_hashes_are_told_apart_by_the_key() {
        // Every key under one hash: the probe must go on past the others.
        let mut index = Index::default();
        let keys: Vec<Vec<u8>> = (0..40).map(|n| vec![n]).collect();
        for slot in 0..keys.len() {
            index.insert(7, slot);
        }
        for (slot, key) in keys.iter().enumerate() {
            assert_eq!(index.find(7, |candidate| keys[candidate] == *key), Some(slot));
        }
        assert!(index.remove(7, 3));
        assert!(!index.remove(7, 3));
        assert_eq!(index.find(7, |candidate| candidate == 3), None);
        assert_eq!(index.find(7, |candidate| candidate == 39), Some(39));
        assert_eq!(index.find(8, |_| true), None);
    }

    #[test]
    fn an_empty_index_allocates_nothing_and_finds_nothing() {
        let index = Index::default();
        assert_eq!(index.cells.capacity(), 0);
        assert_eq!(index.find(hash_of(b"x"), |_| true), None);
        assert!(index.is_empty());
    }
}
