//! Local midnight in a zone, with the DST rules of DESIGN §3.1: where 00:00 repeats (clocks set
//! back across midnight, e.g. America/Havana in November) the digest is due at the first of the
//! two; where 00:00 does not exist (clocks set forward over midnight, e.g. America/Havana in
//! March, America/Santiago in September) it is due at the first local instant after the gap.

use crate::event::time::Timestamp;
use chrono::{LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use rustc_hash::FxBuildHasher;
use std::cell::RefCell;
use std::collections::HashMap;

/// Digest instants already computed, per (zone, date). A pure function's results, so sharing
/// them cannot change a decision; it spares the tz lookups that were most of the cost of every
/// rescheduling (all clusters of a zone ask for the same few dates). Bounded: cleared when full.
const MEMO_CAP: usize = 16_384;

thread_local! {
    static MEMO: RefCell<HashMap<(Tz, NaiveDate), Option<Timestamp>, FxBuildHasher>> =
        RefCell::new(HashMap::default());
}

/// The UTC instant at which the digest of local date `date` is due in `tz`.
///
/// `None` only if no local instant of that date exists at all (never in the tz database for the
/// years a gateway runs in); callers then skip that date.
pub fn digest_instant(tz: Tz, date: NaiveDate) -> Option<Timestamp> {
    MEMO.with(|memo| {
        if let Some(hit) = memo.borrow().get(&(tz, date)) {
            return *hit;
        }
        let instant = compute_digest_instant(tz, date);
        let mut memo = memo.borrow_mut();
        if memo.len() >= MEMO_CAP {
            memo.clear();
        }
        memo.insert((tz, date), instant);
        instant
    })
}

fn compute_digest_instant(tz: Tz, date: NaiveDate) -> Option<Timestamp> {
    let midnight = date.and_time(NaiveTime::MIN);
    earliest(tz, &midnight).or_else(|| {
        // Midnight fell into a gap. Every transition of the current tz database happens on a
        // whole minute with whole-minute offsets, so the first local minute that exists after
        // midnight is exactly the first instant after the gap. Gaps are at most a few hours;
        // the bound only guarantees termination.
        (1..=24 * 60).find_map(|m| earliest(tz, &(midnight + TimeDelta::minutes(m))))
    })
}

fn earliest(tz: Tz, local: &NaiveDateTime) -> Option<Timestamp> {
    match tz.from_local_datetime(local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        // A repeated local time: the first occurrence, so a repeated midnight fires once.
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// The latest local date whose digest instant is at or before `now`, with that instant.
///
/// Usually today. Tomorrow is tried first for a zone that would set clocks back from after
/// midnight to before it (the local date reads "yesterday" again although today's digest
/// instant has passed); none does in the current tz database, the check costs nothing.
pub fn latest_digest(tz: Tz, now: Timestamp) -> Option<(NaiveDate, Timestamp)> {
    let today = now.with_timezone(&tz).date_naive();
    let yesterday = today.pred_opt();
    [
        today.succ_opt(),
        Some(today),
        yesterday,
        yesterday.and_then(|d| d.pred_opt()),
    ]
    .into_iter()
    .flatten()
    .find_map(|d| digest_instant(tz, d).filter(|t| *t <= now).map(|t| (d, t)))
}

/// The first digest instant strictly after the date `after` (the next date whose instant exists).
pub fn digest_after(tz: Tz, after: NaiveDate) -> Option<(NaiveDate, Timestamp)> {
    let mut date = after;
    for _ in 0..3 {
        date = date.succ_opt()?;
        if let Some(t) = digest_instant(tz, date) {
            return Some((date, t));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn utc(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn havana_midnight_is_skipped_in_march_and_repeated_in_november() {
        // Verifies the tz database compiled in (2025b) still has the shape the timeline tests
        // rely on: Cuba sets clocks forward at 00:00 and back at 01:00 (to 00:00).
        let tz = chrono_tz::America::Havana;
        let m = |d: &str| day(d).and_time(NaiveTime::MIN);
        assert!(matches!(
            tz.from_local_datetime(&m("2025-03-09")),
            LocalResult::None
        ));
        assert!(matches!(
            tz.from_local_datetime(&m("2025-11-02")),
            LocalResult::Ambiguous(..)
        ));
    }

    #[test]
    fn skipped_midnight_maps_to_first_instant_after_the_gap() {
        // Havana 2025-03-09: 00:00 CST (-05) becomes 01:00 CDT (-04) at 05:00 UTC.
        let tz = chrono_tz::America::Havana;
        assert_eq!(
            digest_instant(tz, day("2025-03-09")),
            Some(utc("2025-03-09T05:00:00Z"))
        );
        // Santiago 2025-09-07: 00:00 -04 becomes 01:00 -03 at 04:00 UTC.
        let tz = chrono_tz::America::Santiago;
        assert_eq!(
            digest_instant(tz, day("2025-09-07")),
            Some(utc("2025-09-07T04:00:00Z"))
        );
    }

    #[test]
    fn repeated_midnight_maps_to_its_first_occurrence() {
        // Havana 2025-11-02: 01:00 CDT (-04) goes back to 00:00 CST (-05); midnight is first
        // reached at 04:00 UTC, again at 05:00 UTC.
        let tz = chrono_tz::America::Havana;
        assert_eq!(
            digest_instant(tz, day("2025-11-02")),
            Some(utc("2025-11-02T04:00:00Z"))
        );
    }

    #[test]
    fn hour_repeated_before_midnight_keeps_a_single_midnight() {
        // Asia/Beirut 2025-10-26: at 00:00 EEST (21:00 UTC) clocks go back to 23:00 EET of the
        // 25th, so the 25th's last hour repeats and the 26th's midnight is reached once, at
        // 22:00 UTC. During the repeated hour the latest digest is still the 25th's.
        let tz = chrono_tz::Asia::Beirut;
        assert_eq!(
            digest_instant(tz, day("2025-10-26")),
            Some(utc("2025-10-25T22:00:00Z"))
        );
        let now = utc("2025-10-25T21:30:00Z");
        assert_eq!(now.with_timezone(&tz).date_naive(), day("2025-10-25"));
        assert_eq!(
            latest_digest(tz, now).map(|(d, _)| d),
            Some(day("2025-10-25"))
        );
    }

    #[test]
    fn digest_after_gives_the_next_midnight() {
        let tz = chrono_tz::Asia::Kathmandu;
        assert_eq!(
            digest_after(tz, day("2025-01-01")),
            Some((day("2025-01-02"), utc("2025-01-01T18:15:00Z")))
        );
    }
}
