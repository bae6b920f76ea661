//! JSON framing: any bytes, decoded as each of the three event kinds. Never a panic; what
//! decodes round-trips through all three framings.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use mailgate_notify::event::decode::decode_json;
use mailgate_notify::event::EventKind;

fuzz_target!(|data: &[u8]| {
    let d = common::decoder();
    for kind in EventKind::ALL {
        let direct = decode_json(kind, data);
        if let Ok(event) = &direct {
            common::round_trips(kind, event);
        }
        // Through framing detection too (leading whitespace, then `{`).
        let framed = d.decode_cached(kind, data);
        if data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            assert_eq!(framed, direct, "framing detection changed the JSON result");
        }
    }
});
