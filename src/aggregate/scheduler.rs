//! One deadline structure for every cluster: a binary heap with lazy invalidation. Rescheduling
//! a cluster pushes a new entry and leaves the old one in the heap, marked dead by a sequence
//! number; dead entries are skipped when they surface and the heap is rebuilt when they
//! outnumber the live ones, so memory stays proportional to the number of clusters.

use crate::event::time::Timestamp;
use rustc_hash::FxBuildHasher;
use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

/// Deadlines of many keys (clusters); `O(log n)` schedule and pop.
#[derive(Debug, Clone)]
pub struct Scheduler<K> {
    heap: BinaryHeap<Reverse<(Timestamp, u64, K)>>,
    /// Fx hashing: keys are cluster ids from the gateway, hashed twice per reschedule.
    live: HashMap<K, (Timestamp, u64), FxBuildHasher>,
    seq: u64,
}

impl<K> Default for Scheduler<K> {
    fn default() -> Self {
        Scheduler {
            heap: BinaryHeap::new(),
            live: HashMap::default(),
            seq: 0,
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> Scheduler<K> {
    /// An empty scheduler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key`'s deadline to `at`, replacing any earlier one.
    pub fn schedule(&mut self, key: K, at: Timestamp) {
        if self.live.get(&key).is_some_and(|(t, _)| *t == at) {
            return;
        }
        self.seq += 1;
        self.live.insert(key.clone(), (at, self.seq));
        self.heap.push(Reverse((at, self.seq, key)));
        self.compact_if_sparse();
    }

    /// Forgets `key`'s deadline.
    pub fn remove<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.live.remove(key).is_some() {
            self.compact_if_sparse();
        }
    }

    /// `key`'s deadline, if it has one.
    pub fn deadline<Q>(&self, key: &Q) -> Option<Timestamp>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.live.get(key).map(|(t, _)| *t)
    }

    /// Removes and returns every key whose deadline is at or before `now`, earliest first.
    pub fn pop_due(&mut self, now: Timestamp) -> Vec<K> {
        self.pop_due_at_most(now, usize::MAX)
    }

    /// As [`Scheduler::pop_due`], but at most `limit` keys; the rest stay due.
    pub fn pop_due_at_most(&mut self, now: Timestamp, limit: usize) -> Vec<K> {
        let mut due = Vec::new();
        while let Some(Reverse((at, _, _))) = self.heap.peek() {
            if *at > now || due.len() >= limit {
                break;
            }
            let Some(Reverse((at, seq, key))) = self.heap.pop() else {
                break;
            };
            if self.live.get(&key) == Some(&(at, seq)) {
                self.live.remove(&key);
                due.push(key);
            }
        }
        due
    }

    /// The earliest deadline. Drops dead entries from the top so the answer is exact.
    pub fn next_deadline(&mut self) -> Option<Timestamp> {
        while let Some(Reverse((at, seq, key))) = self.heap.peek() {
            if self.live.get(key) == Some(&(*at, *seq)) {
                return Some(*at);
            }
            self.heap.pop();
        }
        None
    }

    /// Number of keys with a deadline.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no key has a deadline.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Entries in the heap, dead ones included (for tests of the compaction).
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    fn compact_if_sparse(&mut self) {
        if self.heap.len() > 2 * self.live.len() + 64 {
            self.heap = self
                .live
                .iter()
                .map(|(k, (at, seq))| Reverse((*at, *seq, k.clone())))
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone, Utc};

    fn t(secs: i64) -> Timestamp {
        Utc.timestamp_opt(1_750_000_000, 0).unwrap() + TimeDelta::seconds(secs)
    }

    #[test]
    fn pops_due_keys_in_deadline_order_and_keeps_later_ones() {
        let mut s = Scheduler::new();
        s.schedule("b", t(20));
        s.schedule("a", t(10));
        s.schedule("c", t(30));
        assert_eq!(s.next_deadline(), Some(t(10)));
        assert_eq!(s.pop_due(t(20)), vec!["a", "b"]);
        assert_eq!(s.next_deadline(), Some(t(30)));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn rescheduling_replaces_the_earlier_deadline() {
        let mut s = Scheduler::new();
        s.schedule("a", t(10));
        s.schedule("a", t(50));
        assert_eq!(s.pop_due(t(20)), Vec::<&str>::new());
        assert_eq!(s.next_deadline(), Some(t(50)));
        s.schedule("a", t(5));
        assert_eq!(s.pop_due(t(5)), vec!["a"]);
        assert!(s.is_empty());
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn pop_due_at_most_leaves_the_rest_due() {
        let mut s = Scheduler::new();
        for k in 0..5u32 {
            s.schedule(k, t(k.into()));
        }
        assert_eq!(s.pop_due_at_most(t(10), 2), vec![0, 1]);
        assert_eq!(s.next_deadline(), Some(t(2)));
        assert_eq!(s.pop_due_at_most(t(10), 10), vec![2, 3, 4]);
    }

    #[test]
    fn removed_keys_never_fire() {
        let mut s = Scheduler::new();
        s.schedule("a", t(10));
        s.remove(&"a");
        assert_eq!(s.pop_due(t(100)), Vec::<&str>::new());
    }

    #[test]
    fn dead_entries_are_compacted_away() {
        let mut s = Scheduler::new();
        for round in 0..1000 {
            s.schedule(1u32, t(round));
            s.schedule(2u32, t(round));
        }
        assert!(s.heap_len() <= 2 * s.len() + 65, "heap {}", s.heap_len());
        assert_eq!(s.pop_due(t(10_000)), vec![1, 2]);
    }

    #[test]
    fn holds_a_hundred_thousand_clusters() {
        let mut s = Scheduler::new();
        for i in 0..100_000i64 {
            s.schedule(format!("cluster-{i}"), t(100_000 - i));
        }
        assert_eq!(s.len(), 100_000);
        assert_eq!(s.next_deadline(), Some(t(1)));
        let due = s.pop_due(t(100));
        assert_eq!(due.len(), 100);
        assert_eq!(due[0], "cluster-99999");
        assert_eq!(s.len(), 99_900);
    }
}
