//! Confluent wire format: the first byte picks the kind; the rest is the datum behind `00` and
//! the schema id of that kind (primed in the registry cache, so no I/O). Never a panic; what
//! decodes round-trips through all three framings. Unknown ids give `RegistryUnavailable` from
//! `decode_cached` (the caller then fetches), never a panic.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use mailgate_notify::event::decode::CONFLUENT_MAGIC;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, datum)) = data.split_first() else {
        return;
    };
    let kind = common::kind_of(selector);
    let d = common::decoder();
    let mut record = vec![CONFLUENT_MAGIC];
    record.extend_from_slice(&common::confluent_id(kind).to_be_bytes());
    record.extend_from_slice(datum);
    if let Ok(event) = d.decode_cached(kind, &record) {
        common::round_trips(kind, &event);
    }
    // The input behind a bare magic byte: the id itself fuzzed.
    let mut record = vec![CONFLUENT_MAGIC];
    record.extend_from_slice(data);
    if let Err(e) = d.decode_cached(kind, &record) {
        assert!(mailgate_notify::event::DecodeError::CODES.contains(&e.error_code()));
    }
});
