//! Avro single-object framing: the first byte picks the kind; the rest is the datum behind
//! `C3 01` and that kind's fingerprint, so the fuzzer spends its time inside the datum. Never a
//! panic; what decodes round-trips through all three framings.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use mailgate_notify::event::decode::SINGLE_OBJECT_MAGIC;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, datum)) = data.split_first() else {
        return;
    };
    let kind = common::kind_of(selector);
    let d = common::decoder();
    let mut record = SINGLE_OBJECT_MAGIC.to_vec();
    record.extend_from_slice(&d.store().reader(kind).fingerprint());
    record.extend_from_slice(datum);
    if let Ok(event) = d.decode_cached(kind, &record) {
        common::round_trips(kind, &event);
    }
    // The raw input as a record of each kind (header bytes fuzzed too).
    for kind in mailgate_notify::event::EventKind::ALL {
        let _ = d.decode_cached(kind, data);
    }
});
