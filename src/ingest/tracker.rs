//! Per-partition offset tracking for at-least-once delivery. Records are handed out in offset
//! order; they complete in any order; only the contiguous done prefix may be committed, never past
//! a record that is still in flight. Pure data structure: no Kafka, no clock.

use std::collections::{BTreeMap, HashMap, VecDeque};

/// A topic by its index in the subscription (0 application, 1 bounces, 2 scan verdicts), so that
/// tickets stay `Copy` and small.
pub type TopicIdx = u8;

/// Identifies one handed-out record for its completion. `generation` changes each time the
/// partition is (re)assigned, so that a late completion from before a revoke is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    /// Topic index.
    pub topic: TopicIdx,
    /// Partition.
    pub partition: i32,
    /// Offset of the record.
    pub offset: i64,
    /// Assignment generation of the partition when the record was handed out.
    pub generation: u64,
}

/// What a completion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompleteOutcome {
    /// Marked done; the committable offset may have moved.
    Done,
    /// The partition is no longer ours (revoked, or reassigned since): ignored.
    Stale,
    /// Completed twice, or never handed out: ignored (a bug upstream, logged by the caller).
    Unknown,
}

#[derive(Debug, Default)]
struct PartitionState {
    generation: u64,
    /// Handed-out records, in offset order, with their done flag.
    window: VecDeque<(i64, bool)>,
    /// Offset to commit: the first offset not yet done (Kafka commits "next to read").
    committable: Option<i64>,
    /// What was last committed, to skip no-op commits.
    committed: Option<i64>,
    in_flight: usize,
}

/// Offset tracking for every assigned partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<(TopicIdx, i32), PartitionState>,
    next_generation: u64,
    total_in_flight: usize,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts tracking a newly assigned partition (a fresh generation).
    pub fn assign(&mut self, topic: TopicIdx, partition: i32) {
        self.next_generation += 1;
        let generation = self.next_generation;
        if let Some(old) = self.partitions.insert(
            (topic, partition),
            PartitionState {
                generation,
                ..Default::default()
            },
        ) {
            self.total_in_flight -= old.in_flight;
        }
    }

    /// Stops tracking a revoked partition; its later completions are stale.
    pub fn revoke(&mut self, topic: TopicIdx, partition: i32) {
        if let Some(old) = self.partitions.remove(&(topic, partition)) {
            self.total_in_flight -= old.in_flight;
        }
    }

    /// Whether the partition is assigned.
    pub fn is_assigned(&self, topic: TopicIdx, partition: i32) -> bool {
        self.partitions.contains_key(&(topic, partition))
    }

    /// Records that `offset` was handed out; returns its ticket, or `None` if the partition is
    /// not assigned. Offsets must increase per partition (Kafka order); a lower or equal one
    /// (a re-delivery after a seek) is tracked after the current window.
    pub fn start(&mut self, topic: TopicIdx, partition: i32, offset: i64) -> Option<Ticket> {
        let p = self.partitions.get_mut(&(topic, partition))?;
        if p.window.is_empty() && p.committable.is_none() {
            p.committable = Some(offset);
        }
        p.window.push_back((offset, false));
        p.in_flight += 1;
        self.total_in_flight += 1;
        Some(Ticket {
            topic,
            partition,
            offset,
            generation: p.generation,
        })
    }

    /// Marks a record done and advances the committable offset over the done prefix.
    pub fn complete(&mut self, t: Ticket) -> CompleteOutcome {
        let Some(p) = self.partitions.get_mut(&(t.topic, t.partition)) else {
            return CompleteOutcome::Stale;
        };
        if p.generation != t.generation {
            return CompleteOutcome::Stale;
        }
        // The window is sorted by offset in the normal case; binary search, then fall back to a
        // scan for the rare out-of-order re-delivery.
        let idx = match p.window.binary_search_by_key(&t.offset, |(o, _)| *o) {
            Ok(i) if !p.window[i].1 => Some(i),
            _ => p.window.iter().position(|(o, d)| *o == t.offset && !*d),
        };
        let Some(i) = idx else {
            return CompleteOutcome::Unknown;
        };
        p.window[i].1 = true;
        p.in_flight -= 1;
        self.total_in_flight -= 1;
        while let Some(&(offset, true)) = p.window.front() {
            p.window.pop_front();
            p.committable = Some(offset + 1);
        }
        CompleteOutcome::Done
    }

    /// Records in flight on one partition.
    pub fn in_flight(&self, topic: TopicIdx, partition: i32) -> usize {
        self.partitions
            .get(&(topic, partition))
            .map(|p| p.in_flight)
            .unwrap_or(0)
    }

    /// Records in flight on all partitions.
    pub fn total_in_flight(&self) -> usize {
        self.total_in_flight
    }

    /// In-flight count of the given partitions together (for revoke waits).
    pub fn in_flight_of(&self, parts: &[(TopicIdx, i32)]) -> usize {
        parts.iter().map(|(t, p)| self.in_flight(*t, *p)).sum()
    }

    /// The offset that may be committed for one partition (next offset to read), if any record
    /// has been handed out since assignment.
    pub fn committable(&self, topic: TopicIdx, partition: i32) -> Option<i64> {
        self.partitions
            .get(&(topic, partition))
            .and_then(|p| p.committable)
    }

    /// Offsets that moved since the last `mark_committed`, for a commit.
    pub fn pending_commits(&self) -> BTreeMap<(TopicIdx, i32), i64> {
        self.partitions
            .iter()
            .filter_map(|(k, p)| match p.committable {
                Some(c) if p.committed != Some(c) => Some((*k, c)),
                _ => None,
            })
            .collect()
    }

    /// Records that these offsets were committed.
    pub fn mark_committed(&mut self, offsets: &BTreeMap<(TopicIdx, i32), i64>) {
        for (k, off) in offsets {
            if let Some(p) = self.partitions.get_mut(k) {
                p.committed = Some(*off);
            }
        }
    }

    /// Every assigned partition.
    pub fn assigned(&self) -> Vec<(TopicIdx, i32)> {
        let mut v: Vec<_> = self.partitions.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commits_only_the_contiguous_done_prefix() {
        let mut t = OffsetTracker::new();
        t.assign(0, 3);
        let a = t.start(0, 3, 10).unwrap();
        let b = t.start(0, 3, 11).unwrap();
        let c = t.start(0, 3, 12).unwrap();
        assert_eq!(t.committable(0, 3), Some(10));
        assert_eq!(t.complete(c), CompleteOutcome::Done);
        assert_eq!(t.committable(0, 3), Some(10), "12 done but 10, 11 are not");
        assert_eq!(t.complete(a), CompleteOutcome::Done);
        assert_eq!(t.committable(0, 3), Some(11));
        assert_eq!(t.complete(b), CompleteOutcome::Done);
        assert_eq!(t.committable(0, 3), Some(13));
        assert_eq!(t.in_flight(0, 3), 0);
    }

    #[test]
    fn completion_after_revoke_or_reassign_is_stale() {
        let mut t = OffsetTracker::new();
        t.assign(1, 0);
        let a = t.start(1, 0, 5).unwrap();
        t.revoke(1, 0);
        assert_eq!(t.complete(a), CompleteOutcome::Stale);
        t.assign(1, 0);
        assert_eq!(t.complete(a), CompleteOutcome::Stale, "new generation");
        assert_eq!(t.total_in_flight(), 0);
        assert!(t.start(2, 0, 1).is_none(), "unassigned partition");
    }

    #[test]
    fn double_completion_is_reported_and_harmless() {
        let mut t = OffsetTracker::new();
        t.assign(0, 0);
        let a = t.start(0, 0, 0).unwrap();
        assert_eq!(t.complete(a), CompleteOutcome::Done);
        assert_eq!(t.complete(a), CompleteOutcome::Unknown);
        assert_eq!(t.committable(0, 0), Some(1));
        assert_eq!(t.total_in_flight(), 0);
    }

    #[test]
    fn pending_commits_lists_only_moved_partitions() {
        let mut t = OffsetTracker::new();
        t.assign(0, 0);
        t.assign(0, 1);
        let a = t.start(0, 0, 7).unwrap();
        t.complete(a);
        let p = t.pending_commits();
        assert_eq!(p.into_iter().collect::<Vec<_>>(), vec![((0, 0), 8)]);
        t.mark_committed(&t.pending_commits());
        assert!(t.pending_commits().is_empty());
    }

    proptest! {
        /// For any completion order, the committable offset never passes an unfinished record
        /// and reaches the end once all are done.
        #[test]
        fn committed_offset_never_passes_an_unfinished_record(
            n in 1usize..200,
            seed in any::<u64>(),
            start in 0i64..1_000_000,
        ) {
            use rand::{seq::SliceRandom, SeedableRng};
            let mut t = OffsetTracker::new();
            t.assign(2, 1);
            let tickets: Vec<_> = (0..n as i64).map(|i| t.start(2, 1, start + i).unwrap()).collect();
            let mut order = tickets.clone();
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
            let mut done = std::collections::BTreeSet::new();
            for tk in order {
                prop_assert_eq!(t.complete(tk), CompleteOutcome::Done);
                done.insert(tk.offset);
                let c = t.committable(2, 1).unwrap();
                // Every offset below c is done; c itself is not done (or is the end).
                prop_assert!((start..c).all(|o| done.contains(&o)));
                prop_assert!(c == start + n as i64 || !done.contains(&c));
            }
            prop_assert_eq!(t.committable(2, 1), Some(start + n as i64));
            prop_assert_eq!(t.total_in_flight(), 0);
        }
    }
}
