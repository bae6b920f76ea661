//! Direct decoder for Avro data written with exactly one of our built-in schemas
//! (`schemas/*.avsc`): reads the binary encoding straight into the model types in one pass,
//! without apache-avro's `Value` tree, schema resolution and serde replay (issue 9: the `Value`
//! path alone tops out far below the throughput target).
//!
//! It is only correct for the exact built-in writer schemas: the field order, union branches and
//! enum symbol order below mirror them, and a unit test pins every enum's symbol list to the
//! contract enum's order. Any other writer schema goes through the apache-avro resolution path.
//! Structural errors are `AvroInvalid`, values that do not fit the model (a port above 65535, a
//! negative size, a timestamp out of range) are `FieldInvalid` naming the field, like that path.

use super::decode::{DecodeError, MAX_AVRO_ALLOCATION};
use super::model::*;
use super::time::Timestamp;
use chrono::{TimeZone, Utc};
use std::collections::BTreeMap;

/// Decodes a whole datum of `kind` written with the built-in schema of that kind. Truncated input
/// and trailing bytes are errors.
pub fn decode(kind: EventKind, datum: &[u8]) -> Result<Event, DecodeError> {
    let mut r = Reader {
        rest: datum,
        total: datum.len(),
        value_error: None,
    };
    let event = match kind {
        EventKind::Application => Event::Application(application(&mut r)?),
        EventKind::Bounce => Event::Bounce(bounce(&mut r)?),
        EventKind::ScanVerdict => Event::ScanVerdict(scan_verdict(&mut r)?),
    };
    if !r.rest.is_empty() {
        return Err(DecodeError::AvroInvalid(format!(
            "{} trailing bytes after a {}-byte datum",
            r.rest.len(),
            r.total - r.rest.len()
        )));
    }
    // Only now: apache-avro reports a malformed datum before any value that misfits the model.
    match r.value_error {
        Some(e) => Err(e),
        None => Ok(event),
    }
}

/// A cursor over the datum; every read checks the remaining length first.
struct Reader<'a> {
    rest: &'a [u8],
    total: usize,
    /// First value that does not fit the model; decoding goes on so that a structural error
    /// later in the datum wins, as on the apache-avro path.
    value_error: Option<DecodeError>,
}

fn invalid(detail: impl Into<String>) -> DecodeError {
    DecodeError::AvroInvalid(detail.into())
}

fn field(path: impl Into<String>, detail: impl Into<String>) -> DecodeError {
    DecodeError::FieldInvalid {
        path: path.into(),
        detail: detail.into(),
    }
}

impl Reader<'_> {
    /// Remembers the first misfit value; the caller continues with a placeholder.
    fn misfit(&mut self, path: impl FnOnce() -> String, detail: String) {
        if self.value_error.is_none() {
            self.value_error = Some(field(path(), detail));
        }
    }

    fn truncated(&self) -> DecodeError {
        invalid(format!("datum truncated after {} bytes", self.total))
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.rest.split_first().ok_or_else(|| self.truncated())?;
        self.rest = rest;
        Ok(b)
    }

    /// Avro `long`: zigzag varint of at most 10 bytes. Bits beyond 64 in the tenth byte are
    /// dropped, as apache-avro does, so both paths agree on every input.
    fn long(&mut self) -> Result<i64, DecodeError> {
        let mut z = 0u64;
        let mut shift = 0u32;
        loop {
            if shift > 63 {
                return Err(invalid("variable-length integer longer than 10 bytes"));
            }
            let b = self.byte()?;
            z |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        Ok(if z & 1 == 0 {
            (z >> 1) as i64
        } else {
            !(z >> 1) as i64
        })
    }

    fn int(&mut self) -> Result<i32, DecodeError> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| invalid(format!("int {v} out of range")))
    }

    fn boolean(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(invalid(format!("invalid boolean byte {b}"))),
        }
    }

    /// A length or item count: non-negative and within the allocation cap. The cap keeps the
    /// slow path's semantics; the real bound is the input, checked where the bytes are taken.
    fn len(&mut self, v: i64) -> Result<usize, DecodeError> {
        let n = usize::try_from(v).map_err(|_| invalid(format!("negative length {v}")))?;
        if n > MAX_AVRO_ALLOCATION {
            return Err(invalid(format!(
                "length {n} exceeds the {MAX_AVRO_ALLOCATION}-byte allocation cap"
            )));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let v = self.long()?;
        let n = self.len(v)?;
        if n > self.rest.len() {
            return Err(self.truncated());
        }
        let (bytes, rest) = self.rest.split_at(n);
        self.rest = rest;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| invalid(format!("string is not UTF-8: {e}")))
    }

    /// Branch index of a union of `branches` alternatives.
    fn union_index(&mut self, branches: i64) -> Result<i64, DecodeError> {
        let i = self.long()?;
        if (0..branches).contains(&i) {
            Ok(i)
        } else {
            Err(invalid(format!(
                "union branch {i} of a {branches}-branch union"
            )))
        }
    }

    /// `["null", T]`.
    fn optional<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.union_index(2)? {
            0 => Ok(None),
            _ => read(self).map(Some),
        }
    }

    fn opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        self.optional(Self::string)
    }

    /// Item count of the next block of an array or map; 0 ends it. A negative count is followed
    /// by the block's byte size, which we do not need.
    fn block_len(&mut self) -> Result<usize, DecodeError> {
        let raw = self.long()?;
        let count = if raw < 0 {
            self.long()?;
            raw.checked_neg()
                .ok_or_else(|| invalid("block count overflows"))?
        } else {
            raw
        };
        self.len(count)
    }

    /// An array; `read` gets the item index (for error paths). Capacity never exceeds the
    /// remaining input, as every item takes at least one byte.
    fn array<T>(
        &mut self,
        mut read: impl FnMut(&mut Self, usize) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let mut out = Vec::new();
        loop {
            let n = self.block_len()?;
            if n == 0 {
                return Ok(out);
            }
            out.reserve(n.min(self.rest.len()));
            for _ in 0..n {
                let i = out.len();
                out.push(read(self, i)?);
            }
        }
    }

    fn string_map(&mut self) -> Result<BTreeMap<String, String>, DecodeError> {
        let mut out = BTreeMap::new();
        loop {
            let n = self.block_len()?;
            if n == 0 {
                return Ok(out);
            }
            for _ in 0..n {
                let k = self.string()?;
                let v = self.string()?;
                out.insert(k, v);
            }
        }
    }

    /// An enum of the built-in schema, whose symbols are exactly `all` in order (`UNKNOWN` last).
    fn enumeration<T: Copy>(&mut self, all: &[T]) -> Result<T, DecodeError> {
        let i = self.long()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| all.get(i).copied())
            .ok_or_else(|| invalid(format!("enum index {i} of {} symbols", all.len())))
    }

    fn timestamp(&mut self, path: &str) -> Result<Timestamp, DecodeError> {
        let ms = self.long()?;
        Ok(match Utc.timestamp_millis_opt(ms).single() {
            Some(t) => t,
            None => {
                self.misfit(|| path.into(), format!("timestamp {ms} ms is out of range"));
                Timestamp::UNIX_EPOCH
            }
        })
    }

    fn unsigned(&mut self, path: impl FnOnce() -> String) -> Result<u64, DecodeError> {
        let v = self.long()?;
        Ok(u64::try_from(v).unwrap_or_else(|_| {
            self.misfit(path, format!("{v} is negative"));
            0
        }))
    }
}

fn node(r: &mut Reader) -> Result<Node, DecodeError> {
    let node_id = r.string()?;
    let ip = r.string()?;
    let port = r.int()?;
    let port = u16::try_from(port).unwrap_or_else(|_| {
        r.misfit(|| "node.port".into(), format!("port {port} out of range"));
        0
    });
    Ok(Node {
        node_id,
        ip,
        port,
        comment: r.opt_string()?,
        is_control: r.boolean()?,
    })
}

fn application(r: &mut Reader) -> Result<ApplicationEvent, DecodeError> {
    Ok(ApplicationEvent {
        event_id: r.string()?,
        cluster_id: r.string()?,
        node: node(r)?,
        control_timezone: r.opt_string()?,
        group: r.enumeration(ErrorGroup::ALL)?,
        kind: r.enumeration(ErrorKind::ALL)?,
        state: r.enumeration(ErrorState::ALL)?,
        occurred_at: r.timestamp("occurred_at")?,
        last_successful_sync_at: r.optional(|r| r.timestamp("last_successful_sync_at"))?,
        message: r.opt_string()?,
        attributes: r.string_map()?,
    })
}

fn recipient(r: &mut Reader) -> Result<Recipient, DecodeError> {
    Ok(Recipient {
        address: r.string()?,
        original_recipient: r.opt_string()?,
        action: r.enumeration(RecipientAction::ALL)?,
        status: r.string()?,
        diagnostic_code: r.opt_string()?,
        remote_mta: r.opt_string()?,
    })
}

fn bounce(r: &mut Reader) -> Result<BounceEvent, DecodeError> {
    Ok(BounceEvent {
        event_id: r.string()?,
        cluster_id: r.string()?,
        node: node(r)?,
        class: r.enumeration(BounceClass::ALL)?,
        queue_id: r.string()?,
        message_id: r.opt_string()?,
        smtp_message_id: r.opt_string()?,
        sender: r.string()?,
        recipients: r.array(|r, _| recipient(r))?,
        reason: r.opt_string()?,
        subject: r.opt_string()?,
        arrival_date: r.timestamp("arrival_date")?,
        occurred_at: r.timestamp("occurred_at")?,
        original_headers: r.opt_string()?,
    })
}

fn detection(r: &mut Reader, rule: usize, i: usize) -> Result<Detection, DecodeError> {
    Ok(Detection {
        module: r.enumeration(DetectionModule::ALL)?,
        status: r.string()?,
        threat_name: r.opt_string()?,
        object_name: r.opt_string()?,
        object_size: r.optional(|r| {
            r.unsigned(|| format!("triggered_rules[{rule}].detections[{i}].object_size"))
        })?,
        object_action: r.enumeration(ObjectAction::ALL)?,
    })
}

fn rule_trigger(r: &mut Reader, rule: usize) -> Result<RuleTrigger, DecodeError> {
    Ok(RuleTrigger {
        rule_id: r.string()?,
        rule_name: r.opt_string()?,
        affected_recipients: r.array(|r, _| r.string())?,
        detections: r.array(|r, i| detection(r, rule, i))?,
    })
}

fn scan_verdict(r: &mut Reader) -> Result<ScanVerdict, DecodeError> {
    Ok(ScanVerdict {
        event_id: r.string()?,
        cluster_id: r.string()?,
        node: node(r)?,
        message_id: r.string()?,
        smtp_message_id: r.opt_string()?,
        sender: r.string()?,
        sender_ip: r.opt_string()?,
        sender_authenticated: r.boolean()?,
        all_recipients: r.array(|r, _| r.string())?,
        subject: r.opt_string()?,
        received_at: r.timestamp("received_at")?,
        size: r.unsigned(|| "size".into())?,
        message_action: r.enumeration(MessageAction::ALL)?,
        backed_up: r.boolean()?,
        triggered_rules: r.array(rule_trigger)?,
        original_headers: r.opt_string()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::schema::SchemaStore;
    use apache_avro::Schema;

    /// Symbols of every enum named `name` anywhere in `schema`.
    fn enum_symbols(schema: &Schema, name: &str) -> Option<Vec<String>> {
        match schema {
            Schema::Enum(e) if e.name.name == name => Some(e.symbols.clone()),
            Schema::Record(r) => r.fields.iter().find_map(|f| enum_symbols(&f.schema, name)),
            Schema::Array(a) => enum_symbols(&a.items, name),
            Schema::Union(u) => u.variants().iter().find_map(|s| enum_symbols(s, name)),
            _ => None,
        }
    }

    fn symbols<T: std::fmt::Display>(all: &[T]) -> Vec<String> {
        all.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn contract_enum_order_matches_the_builtin_schema_symbols() {
        let store = SchemaStore::builtin();
        let s = |k| &store.reader(k).schema;
        let cases: [(EventKind, &str, Vec<String>); 8] = [
            (
                EventKind::Application,
                "ErrorGroup",
                symbols(ErrorGroup::ALL),
            ),
            (EventKind::Application, "ErrorKind", symbols(ErrorKind::ALL)),
            (
                EventKind::Application,
                "ErrorState",
                symbols(ErrorState::ALL),
            ),
            (EventKind::Bounce, "BounceClass", symbols(BounceClass::ALL)),
            (
                EventKind::Bounce,
                "RecipientAction",
                symbols(RecipientAction::ALL),
            ),
            (
                EventKind::ScanVerdict,
                "MessageAction",
                symbols(MessageAction::ALL),
            ),
            (
                EventKind::ScanVerdict,
                "DetectionModule",
                symbols(DetectionModule::ALL),
            ),
            (
                EventKind::ScanVerdict,
                "ObjectAction",
                symbols(ObjectAction::ALL),
            ),
        ];
        for (kind, name, ours) in cases {
            assert_eq!(enum_symbols(s(kind), name), Some(ours), "{name}");
        }
    }

    #[test]
    fn negative_block_count_with_byte_size_is_read_like_a_positive_one() {
        // all_recipients-like array of strings: block of -2 items (12 bytes), then end.
        let bytes = [3, 24, 2, b'a', 2, b'b', 0];
        let mut r = Reader {
            rest: &bytes,
            total: bytes.len(),
            value_error: None,
        };
        assert_eq!(r.array(|r, _| r.string()).expect("array"), ["a", "b"]);
        assert!(r.rest.is_empty());
    }

    #[test]
    fn huge_length_prefix_is_refused_without_allocating() {
        // String length 2^40: above the cap; 1000: within the cap but beyond the input.
        for len in [1i64 << 40, 1000] {
            let z = ((len << 1) ^ (len >> 63)) as u64;
            let mut bytes = Vec::new();
            let mut v = z;
            while v >= 0x80 {
                bytes.push((v as u8) | 0x80);
                v >>= 7;
            }
            bytes.push(v as u8);
            let mut r = Reader {
                rest: &bytes,
                total: bytes.len(),
                value_error: None,
            };
            assert_eq!(r.string().unwrap_err().error_code(), "avro_invalid");
        }
    }

    #[test]
    fn eleven_byte_varint_is_refused() {
        let bytes = [0xFF; 11];
        let mut r = Reader {
            rest: &bytes,
            total: bytes.len(),
            value_error: None,
        };
        assert!(r.long().is_err());
    }

    mod equivalence {
        use super::super::*;
        use crate::event::encode;
        use crate::event::registry::RegistryClient;
        use crate::event::schema::{reader_schema_text, WriterSchema};
        use crate::event::{Decoder, SchemaStore};
        use proptest::prelude::*;
        use std::sync::{Arc, OnceLock};
        use std::time::Duration;

        /// Registry id of each kind's built-in schema in the primed cache.
        fn id(kind: EventKind) -> u32 {
            match kind {
                EventKind::Application => 1,
                EventKind::Bounce => 2,
                EventKind::ScanVerdict => 3,
            }
        }

        /// (direct, apache-avro only) decoders over the same store and a primed registry cache.
        fn decoders() -> &'static (Decoder, Decoder) {
            static D: OnceLock<(Decoder, Decoder)> = OnceLock::new();
            D.get_or_init(|| {
                let make = |direct| {
                    // Never contacted: ids are primed and only `decode_cached` is called.
                    let registry =
                        RegistryClient::new("http://127.0.0.1:9", Duration::from_millis(1))
                            .expect("client");
                    for kind in EventKind::ALL {
                        let ws = WriterSchema::parse(reader_schema_text(kind), "registry")
                            .expect("schema");
                        registry.prime(id(kind), ws);
                    }
                    Decoder::new(Arc::new(SchemaStore::builtin()), Some(Arc::new(registry)))
                        .with_direct_avro(direct)
                };
                (make(true), make(false))
            })
        }

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z0-9.@-]{0,12}",
                any::<String>().prop_map(|s| s.chars().take(20).collect()),
            ]
        }

        fn opt_text() -> impl Strategy<Value = Option<String>> {
            proptest::option::of(text())
        }

        fn ts() -> impl Strategy<Value = Timestamp> {
            (-(1i64 << 45)..(1i64 << 45))
                .prop_map(|ms| Utc.timestamp_millis_opt(ms).single().expect("in range"))
        }

        fn pick<T: Copy + std::fmt::Debug + 'static>(
            all: &'static [T],
        ) -> impl Strategy<Value = T> {
            proptest::sample::select(all)
        }

        fn arb_node() -> impl Strategy<Value = Node> {
            (text(), text(), any::<u16>(), opt_text(), any::<bool>()).prop_map(
                |(node_id, ip, port, comment, is_control)| Node {
                    node_id,
                    ip,
                    port,
                    comment,
                    is_control,
                },
            )
        }

        fn arb_application() -> impl Strategy<Value = Event> {
            (
                (text(), text(), arb_node(), opt_text()),
                (
                    pick(ErrorGroup::ALL),
                    pick(ErrorKind::ALL),
                    pick(ErrorState::ALL),
                ),
                (ts(), proptest::option::of(ts()), opt_text()),
                proptest::collection::btree_map(text(), text(), 0..4),
            )
                .prop_map(
                    |(
                        (event_id, cluster_id, node, control_timezone),
                        (group, kind, state),
                        (occurred_at, last_successful_sync_at, message),
                        attributes,
                    )| {
                        Event::Application(ApplicationEvent {
                            event_id,
                            cluster_id,
                            node,
                            control_timezone,
                            group,
                            kind,
                            state,
                            occurred_at,
                            last_successful_sync_at,
                            message,
                            attributes,
                        })
                    },
                )
        }

        fn arb_recipient() -> impl Strategy<Value = Recipient> {
            (
                text(),
                opt_text(),
                pick(RecipientAction::ALL),
                text(),
                opt_text(),
                opt_text(),
            )
                .prop_map(
                    |(address, original_recipient, action, status, diagnostic_code, remote_mta)| {
                        Recipient {
                            address,
                            original_recipient,
                            action,
                            status,
                            diagnostic_code,
                            remote_mta,
                        }
                    },
                )
        }

        fn arb_bounce() -> impl Strategy<Value = Event> {
            (
                (text(), text(), arb_node(), pick(BounceClass::ALL), text()),
                (
                    opt_text(),
                    opt_text(),
                    text(),
                    proptest::collection::vec(arb_recipient(), 0..4),
                ),
                (opt_text(), opt_text(), ts(), ts(), opt_text()),
            )
                .prop_map(
                    |(
                        (event_id, cluster_id, node, class, queue_id),
                        (message_id, smtp_message_id, sender, recipients),
                        (reason, subject, arrival_date, occurred_at, original_headers),
                    )| {
                        Event::Bounce(BounceEvent {
                            event_id,
                            cluster_id,
                            node,
                            class,
                            queue_id,
                            message_id,
                            smtp_message_id,
                            sender,
                            recipients,
                            reason,
                            subject,
                            arrival_date,
                            occurred_at,
                            original_headers,
                        })
                    },
                )
        }

        fn arb_detection() -> impl Strategy<Value = Detection> {
            (
                pick(DetectionModule::ALL),
                text(),
                opt_text(),
                opt_text(),
                proptest::option::of(0..=i64::MAX as u64),
                pick(ObjectAction::ALL),
            )
                .prop_map(
                    |(module, status, threat_name, object_name, object_size, object_action)| {
                        Detection {
                            module,
                            status,
                            threat_name,
                            object_name,
                            object_size,
                            object_action,
                        }
                    },
                )
        }

        fn arb_rule() -> impl Strategy<Value = RuleTrigger> {
            (
                text(),
                opt_text(),
                proptest::collection::vec(text(), 0..4),
                proptest::collection::vec(arb_detection(), 0..4),
            )
                .prop_map(|(rule_id, rule_name, affected_recipients, detections)| {
                    RuleTrigger {
                        rule_id,
                        rule_name,
                        affected_recipients,
                        detections,
                    }
                })
        }

        fn arb_verdict() -> impl Strategy<Value = Event> {
            (
                (
                    text(),
                    text(),
                    arb_node(),
                    text(),
                    opt_text(),
                    text(),
                    opt_text(),
                ),
                (
                    any::<bool>(),
                    proptest::collection::vec(text(), 0..4),
                    opt_text(),
                    ts(),
                ),
                (0..=i64::MAX as u64, pick(MessageAction::ALL), any::<bool>()),
                (proptest::collection::vec(arb_rule(), 0..4), opt_text()),
            )
                .prop_map(
                    |(
                        (
                            event_id,
                            cluster_id,
                            node,
                            message_id,
                            smtp_message_id,
                            sender,
                            sender_ip,
                        ),
                        (sender_authenticated, all_recipients, subject, received_at),
                        (size, message_action, backed_up),
                        (triggered_rules, original_headers),
                    )| {
                        Event::ScanVerdict(ScanVerdict {
                            event_id,
                            cluster_id,
                            node,
                            message_id,
                            smtp_message_id,
                            sender,
                            sender_ip,
                            sender_authenticated,
                            all_recipients,
                            subject,
                            received_at,
                            size,
                            message_action,
                            backed_up,
                            triggered_rules,
                            original_headers,
                        })
                    },
                )
        }

        fn arb_event() -> impl Strategy<Value = Event> {
            prop_oneof![arb_application(), arb_bounce(), arb_verdict()]
        }

        /// Both decoders on the same record: equal events, or errors of the same class.
        fn same_outcome(kind: EventKind, bytes: &[u8]) -> Result<Option<Event>, TestCaseError> {
            let (direct, slow) = decoders();
            match (
                direct.decode_cached(kind, bytes),
                slow.decode_cached(kind, bytes),
            ) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(&a, &b);
                    Ok(Some(a))
                }
                (Err(a), Err(b)) => {
                    prop_assert_eq!(a.error_code(), b.error_code(), "{:?} vs {:?}", a, b);
                    Ok(None)
                }
                (a, b) => Err(TestCaseError::fail(format!(
                    "direct {a:?} vs apache-avro {b:?}"
                ))),
            }
        }

        /// Single-object and Confluent framings of the event.
        fn framings(event: &Event) -> [Vec<u8>; 2] {
            let store = decoders().0.store();
            [
                encode::encode_single_object(store, event).expect("single-object"),
                encode::encode_confluent(store, event, id(event.kind())).expect("confluent"),
            ]
        }

        #[test]
        fn builtin_schemas_are_recognised_and_a_micros_variant_with_the_same_fingerprint_is_not() {
            for kind in EventKind::ALL {
                let ws = WriterSchema::parse(reader_schema_text(kind), "t").expect("schema");
                assert_eq!(ws.builtin_kind(), Some(kind));
            }
            let text = reader_schema_text(EventKind::ScanVerdict)
                .replace("timestamp-millis", "timestamp-micros");
            let micros = WriterSchema::parse(&text, "micros").expect("schema");
            let store = SchemaStore::builtin();
            assert_eq!(
                micros.fingerprint(),
                store.reader(EventKind::ScanVerdict).fingerprint(),
                "canonical form ignores logical types"
            );
            assert_eq!(micros.builtin_kind(), None);
        }

        #[test]
        fn confluent_writer_with_same_fingerprint_but_micros_takes_the_apache_avro_path() {
            let text = reader_schema_text(EventKind::ScanVerdict)
                .replace("timestamp-millis", "timestamp-micros");
            let make = |direct| {
                let registry = RegistryClient::new("http://127.0.0.1:9", Duration::from_millis(1))
                    .expect("client");
                registry.prime(9, WriterSchema::parse(&text, "micros").expect("schema"));
                Decoder::new(Arc::new(SchemaStore::builtin()), Some(Arc::new(registry)))
                    .with_direct_avro(direct)
            };
            let fixture = include_bytes!("../../tests/fixtures/events/scan_verdict.avro");
            let mut record = vec![0, 0, 0, 0, 9];
            record.extend_from_slice(&fixture[10..]);
            let a = make(true).decode_cached(EventKind::ScanVerdict, &record);
            let b = make(false).decode_cached(EventKind::ScanVerdict, &record);
            assert_eq!(a, b);
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

            #[test]
            fn direct_decoder_yields_what_apache_avro_yields_for_encoded_events(event in arb_event()) {
                for bytes in framings(&event) {
                    let decoded = same_outcome(event.kind(), &bytes)?;
                    prop_assert_eq!(decoded.as_ref(), Some(&event));
                }
            }

            #[test]
            fn truncated_encoded_events_are_errors_from_both_paths(event in arb_event(), cut in any::<prop::sample::Index>()) {
                for bytes in framings(&event) {
                    let header = if bytes[0] == 0 { 5 } else { 10 };
                    let at = header + cut.index(bytes.len() - header);
                    prop_assert!(same_outcome(event.kind(), &bytes[..at])?.is_none());
                }
            }

            #[test]
            fn trailing_bytes_are_errors_from_both_paths(event in arb_event(), tail in proptest::collection::vec(any::<u8>(), 1..8)) {
                for mut bytes in framings(&event) {
                    bytes.extend_from_slice(&tail);
                    prop_assert!(same_outcome(event.kind(), &bytes)?.is_none());
                }
            }

            #[test]
            fn corrupted_encoded_events_decode_alike_on_both_paths(
                event in arb_event(),
                edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            ) {
                for mut bytes in framings(&event) {
                    let header = if bytes[0] == 0 { 5 } else { 10 };
                    let body = bytes.len() - header;
                    for (at, byte) in &edits {
                        bytes[header + at.index(body)] = *byte;
                    }
                    same_outcome(event.kind(), &bytes)?;
                }
            }

            #[test]
            fn garbage_after_a_builtin_header_decodes_alike_on_both_paths(
                which in 0usize..3,
                tail in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                let kind = EventKind::ALL[which];
                let mut bytes = vec![0xC3, 0x01];
                bytes.extend_from_slice(&decoders().0.store().reader(kind).fingerprint());
                bytes.extend_from_slice(&tail);
                same_outcome(kind, &bytes)?;
            }
        }
    }
}
