//! Byte-pair merging of one pre-tokenized word.
//!
//! A word starts as one symbol per byte (the byte's token); the adjacent pair whose merge rule has the
//! lowest rank is merged, everywhere leftmost first, until no adjacent pair has a rule. This is
//! Hugging Face `tokenizers`' `Word::merge_all` and llama.cpp's `llm_tokenizer_bpe_session`: a heap of
//! candidate pairs keyed by (rank, position), with stale entries skipped when popped, so a long word
//! (a run of 10,000 spaces) costs O(n log n), not O(n²).
//!
//! Rules are kept on token ids, not strings: the merge of `Ġ` and `t` is the pair of their ids, and
//! its result is the id of `Ġt`. A rule whose parts or result are not tokens can never fire and is
//! dropped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Merge rules: (left id, right id) → (rank, merged id).
#[derive(Debug, Clone, Default)]
pub(crate) struct Merges {
    rules: HashMap<(u32, u32), (u32, u32)>,
}

impl Merges {
    /// Adds a rule unless the pair already has one (the first, best-ranked rule wins, as in llama.cpp).
    pub(crate) fn insert(&mut self, left: u32, right: u32, rank: u32, merged: u32) {
        self.rules.entry((left, right)).or_insert((rank, merged));
    }

    fn get(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        self.rules.get(&(left, right)).copied()
    }

    /// Number of usable rules.
    pub(crate) fn len(&self) -> usize {
        self.rules.len()
    }

    /// Merges the symbols `ids` (one per byte, initially) and appends the resulting ids to `out`.
    pub(crate) fn apply(&self, ids: &[u32], out: &mut Vec<u32>) {
        if ids.len() < 2 {
            out.extend_from_slice(ids);
            return;
        }
        // A doubly linked list over the symbols; a merged-away symbol is marked dead.
        let n = ids.len();
        let mut id = ids.to_vec();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut next: Vec<usize> = (1..=n).collect();
        let mut alive = vec![true; n];

        let mut heap = BinaryHeap::new();
        for i in 0..n - 1 {
            if let Some((rank, _)) = self.get(id[i], id[i + 1]) {
                heap.push(Reverse((rank, i)));
            }
        }
        while let Some(Reverse((rank, i))) = heap.pop() {
            let j = next[i];
            // Skip entries made stale by an earlier merge: the left symbol is gone, it has no right
            // neighbour, or the pair at i is no longer the one this entry was pushed for.
            if !alive[i] || j >= n {
                continue;
            }
            let Some((r, merged)) = self.get(id[i], id[j]) else {
                continue;
            };
            if r != rank {
                continue;
            }
            id[i] = merged;
            alive[j] = false;
            next[i] = next[j];
            if next[i] < n {
                prev[next[i]] = i;
            }
            if prev[i] < n {
                if let Some((r, _)) = self.get(id[prev[i]], id[i]) {
                    heap.push(Reverse((r, prev[i])));
                }
            }
            if next[i] < n {
                if let Some((r, _)) = self.get(id[i], id[next[i]]) {
                    heap.push(Reverse((r, i)));
                }
            }
        }
        out.extend((0..n).filter(|&i| alive[i]).map(|i| id[i]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Ids: a=0 b=1 c=2 ab=3 bc=4 abc=5 aa=6
    fn merges() -> Merges {
        let mut m = Merges::default();
        m.insert(0, 1, 0, 3); // a b
        m.insert(3, 2, 1, 5); // ab c
        m.insert(1, 2, 2, 4); // b c
        m.insert(0, 0, 3, 6); // a a
        m
    }

    fn run(ids: &[u32]) -> Vec<u32> {
        let mut out = Vec::new();
        merges().apply(ids, &mut out);
        out
    }

    #[test]
    fn lowest_rank_first() {
        assert_eq!(run(&[0, 1, 2]), [5]);
        assert_eq!(run(&[1, 2]), [4]);
        assert_eq!(run(&[2, 0, 1]), [2, 3]);
    }

    #[test]
    fn ties_merge_leftmost_first() {
        assert_eq!(run(&[0, 0, 0]), [6, 0]);
        assert_eq!(run(&[0, 0, 0, 0]), [6, 6]);
    }

    #[test]
    fn short_words() {
        assert_eq!(run(&[]), Vec::<u32>::new());
        assert_eq!(run(&[2]), [2]);
    }

    #[test]
    fn long_word_is_fast() {
        let ids = vec![0u32; 100_000];
        let out = run(&ids);
        assert_eq!(out.len(), 50_000);
    }
}
