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

    /// One step of the consumer's life as the tracker sees it.
    #[derive(Debug, Clone)]
    enum Op {
        Assign(i32),
        Revoke(i32),
        /// Hand out the partition's next offset, `gap` past the last one; or, with `back`, a
        /// re-delivery of the record handed out `back` hand-outs ago (what a seek back does:
        /// Kafka re-delivers records, so only offsets it delivered before).
        Start {
            partition: i32,
            gap: i64,
            back: Option<i64>,
        },
        /// Complete the ticket at this index (mod the number issued): stale, doubled or live.
        Complete(usize),
        Commit,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => (0i32..3).prop_map(Op::Assign),
            1 => (0i32..3).prop_map(Op::Revoke),
            8 => (0i32..3, 1i64..3, prop::option::weighted(0.1, 0i64..5))
                .prop_map(|(partition, gap, back)| Op::Start { partition, gap, back }),
            8 => any::<usize>().prop_map(Op::Complete),
            2 => Just(Op::Commit),
        ]
    }

    /// A handed-out record in the model: offset, done, and whether it re-delivers an offset
    /// handed out before in the same assignment.
    type Rec = (i64, bool, bool);

    /// The lowest offset that at-least-once still protects: a first delivery not yet done.
    fn lowest_unprotected(records: &[Rec]) -> Option<i64> {
        records
            .iter()
            .filter(|(_, done, again)| !done && !again)
            .map(|(o, _, _)| *o)
            .min()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// Against a model of every handed-out record, over any interleaving of assignments,
        /// revokes, hand-outs (re-deliveries included), completions (stale and doubled included)
        /// and commits on three partitions: completions get the outcome the model says, the
        /// in-flight counts agree, and neither the committable offset nor a pending commit is
        /// ever past a record of the current assignment whose first delivery is unfinished (a
        /// re-delivered copy needs no protection of its own: its first delivery has it).
        #[test]
        fn no_commit_passes_an_unfinished_record_across_rebalances_and_redeliveries(
            ops in proptest::collection::vec(op(), 1..120)
        ) {
            const TOPIC: TopicIdx = 1;
            let mut t = OffsetTracker::new();
            // Model: per partition, the generation of its current assignment and its records.
            let mut model: BTreeMap<i32, (u64, Vec<Rec>)> = BTreeMap::new();
            let mut last: BTreeMap<i32, i64> = BTreeMap::new();
            let mut tickets: Vec<Ticket> = Vec::new();
            for op in ops {
                match op {
                    Op::Assign(p) => {
                        t.assign(TOPIC, p);
                        model.insert(p, (t.next_generation, Vec::new()));
                    }
                    Op::Revoke(p) => {
                        t.revoke(TOPIC, p);
                        model.remove(&p);
                    }
                    Op::Start { partition: p, gap, back } => {
                        let prev = *last.get(&p).unwrap_or(&100);
                        let earlier = model.get(&p).map(|(_, r)| r.len()).unwrap_or(0);
                        let offset = match back {
                            Some(b) if earlier > 0 => {
                                let records = &model[&p].1;
                                records[earlier - 1 - (b as usize % earlier)].0
                            }
                            _ => prev + gap,
                        };
                        last.insert(p, offset.max(prev));
                        let ticket = t.start(TOPIC, p, offset);
                        prop_assert_eq!(ticket.is_some(), model.contains_key(&p));
                        if let (Some(tk), Some((_, records))) = (ticket, model.get_mut(&p)) {
                            let again = records.iter().any(|r| r.0 == offset);
                            records.push((offset, false, again));
                            tickets.push(tk);
                        }
                    }
                    Op::Complete(i) if !tickets.is_empty() => {
                        let tk = tickets[i % tickets.len()];
                        let expected = match model.get_mut(&tk.partition) {
                            Some((g, records)) if *g == tk.generation => {
                                match records.iter_mut().find(|(o, d, _)| *o == tk.offset && !*d) {
                                    Some(r) => { r.1 = true; CompleteOutcome::Done }
                                    None => CompleteOutcome::Unknown,
                                }
                            }
                            _ => CompleteOutcome::Stale,
                        };
                        prop_assert_eq!(t.complete(tk), expected);
                    }
                    Op::Complete(_) => {}
                    Op::Commit => {
                        let pending = t.pending_commits();
                        for ((_, p), c) in &pending {
                            let (_, records) = &model[p];
                            if let Some(u) = lowest_unprotected(records) {
                                prop_assert!(*c <= u, "commit {} passes unfinished {} on {}", c, u, p);
                            }
                        }
                        t.mark_committed(&pending);
                    }
                }
                let mut total = 0;
                for (p, (_, records)) in &model {
                    let unfinished = records.iter().filter(|(_, d, _)| !d).count();
                    prop_assert_eq!(t.in_flight(TOPIC, *p), unfinished);
                    total += unfinished;
                    if let (Some(c), Some(u)) = (t.committable(TOPIC, *p), lowest_unprotected(records)) {
                        prop_assert!(c <= u, "committable {} passes unfinished {} on {}", c, u, p);
                    }
                }
                prop_assert_eq!(t.total_in_flight(), total);
            }
        }
    }
}
