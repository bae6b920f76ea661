//! Making attacker-controlled text harmless before it reaches a template or a header: control
//! characters (and the bidi overrides that disguise `exe.pdf` as `pdf.exe`) are stripped, links
//! are made inert (`hxxp://evil[.]example/x`), long values are cut with a marker that says how
//! much was cut. HTML escaping is the HTML registry's job; RFC 2047 is the MIME builder's.

use super::i18n::Lang;
use std::borrow::Cow;

/// What one character becomes.
enum Class {
    Keep,
    /// Line breaks and other whitespace controls: they would start a new line (or a header).
    Space,
    Drop,
}

fn classify(c: char) -> Class {
    match c {
        '\r' | '\n' | '\t' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
            Class::Space
        }
        // Bidi embeddings, overrides, isolates and marks: "invoice_\u{202E}fdp.exe".
        '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{061C}' => Class::Drop,
        // Invisible characters that hide a link from the defanger (ZWJ/ZWNJ stay: emoji need them).
        '\u{200B}' | '\u{2060}' | '\u{FEFF}' => Class::Drop,
        c if c.is_control() => Class::Drop,
        _ => Class::Keep,
    }
}

/// Whether `s` needs no work at all (the common case, kept allocation-free in the check).
fn is_plain(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7F).contains(&b))
}

/// Strips control characters; line breaks and tabs become one space each run (runs of spaces
/// collapse too, so `a\r\n b` reads `a b`).
pub fn strip_controls(s: &str) -> Cow<'_, str> {
    if is_plain(s) || !s.chars().any(|c| !matches!(classify(c), Class::Keep)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut last_space = false;
    for c in s.chars() {
        match classify(c) {
            // A space next to a replaced line break would leave a double space.
            Class::Keep if c == ' ' && last_space => {}
            Class::Keep => {
                out.push(c);
                last_space = c == ' ';
            }
            Class::Space => {
                if !last_space {
                    out.push(' ');
                    last_space = true;
                }
            }
            Class::Drop => {}
        }
    }
    Cow::Owned(out)
}

const SCHEMES: &[(&str, &str)] = &[
    ("https://", "hxxps://"),
    ("http://", "hxxp://"),
    ("ftps://", "fxps://"),
    ("ftp://", "fxp://"),
];

/// Characters of an authority (`user@host.example:8443`, IDN hosts included).
fn in_host(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '@' | '%' | '[' | ']')
}

/// Makes links inert the way analysts write them: `http://evil.example/x` becomes
/// `hxxp://evil[.]example/x`, `www.evil.example` becomes `www[.]evil[.]example`. Only the scheme
/// and the host are touched, so the text stays readable and a second pass changes nothing. A
/// scheme is defanged wherever it stands (`x-http://…` is still a link to many clients).
pub fn defang(s: &str) -> Cow<'_, str> {
    // The common case (no link) is decided without allocating.
    let has_www = s
        .as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"www."));
    if !s.contains("://") && !has_www {
        return Cow::Borrowed(s);
    }
    let lower = s.to_ascii_lowercase();
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 16);
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        // Schemes and `www.` are ASCII: only a char boundary can start one.
        if !s.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let scheme = SCHEMES
            .iter()
            .find(|(from, _)| lower[i..].starts_with(from));
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let host_start = if let Some((from, to)) = scheme {
            out.push_str(&s[copied..i]);
            out.push_str(to);
            Some(i + from.len())
        } else if boundary && lower[i..].starts_with("www.") {
            out.push_str(&s[copied..i]);
            Some(i)
        } else {
            None
        };
        match host_start {
            Some(start) => {
                // The host ends at the first character that cannot be in one, or where the
                // next link begins (`a-http://b`), so that a second pass finds nothing new.
                let j = s[start..]
                    .char_indices()
                    .find(|(k, c)| {
                        !in_host(*c)
                            || SCHEMES
                                .iter()
                                .any(|(from, _)| lower[start + k..].starts_with(from))
                    })
                    .map_or(s.len(), |(k, _)| start + k);
                out.push_str(&s[start..j].replace('.', "[.]"));
                i = j;
                copied = j;
            }
            None => i += 1,
        }
    }
    out.push_str(&s[copied..]);
    Cow::Owned(out)
}

/// Cuts `s` after `max` characters and says how many were cut, in the reader's language.
pub fn cap(s: &str, max: usize, lang: Lang) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => {
            let rest = s[cut..].chars().count();
            Cow::Owned(format!("{}{}", &s[..cut], lang.cut_marker(rest)))
        }
    }
}

/// The per-notification sanitizer: the cap and the language of the cut marker.
#[derive(Debug, Clone, Copy)]
pub struct Sanitizer {
    /// `templates.max_value_chars`.
    pub max_chars: usize,
    /// Language of the cut marker.
    pub lang: Lang,
}

impl Sanitizer {
    /// Free text from an event (subjects, file names, threat names, diagnostics): controls
    /// stripped, links inert, cut at the cap.
    pub fn text(&self, s: &str) -> String {
        let s = strip_controls(s);
        let s = defang(&s);
        cap(&s, self.max_chars, self.lang).into_owned()
    }

    /// Identifiers and addresses: controls stripped and cut, but no defanging (an address is
    /// shown as the address).
    pub fn plain(&self, s: &str) -> String {
        let s = strip_controls(s);
        cap(&s, self.max_chars, self.lang).into_owned()
    }

    /// Optional free text.
    pub fn opt_text(&self, s: Option<&str>) -> Option<String> {
        s.map(|s| self.text(s))
    }

    /// Optional identifier.
    pub fn opt_plain(&self, s: Option<&str>) -> Option<String> {
        s.map(|s| self.plain(s))
    }
}

/// A header block (the original's headers) for display or attachment: each line keeps its
/// place, control characters other than the line structure are stripped, links are made inert,
/// and the block is cut at a line boundary at `max_bytes` with a final line saying so.
/// Lines end with `\n`.
pub fn header_block(s: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_bytes) + 64);
    // Only the header block counts: it ends at the first empty line.
    let total = [s.find("\n\r\n"), s.find("\n\n")]
        .into_iter()
        .flatten()
        .min()
        .map_or(s.len(), |i| i + 1);
    let mut shown = 0usize;
    let mut truncated = false;
    for line in s.split('\n') {
        let raw = line.strip_suffix('\r').unwrap_or(line);
        if raw.is_empty() {
            // The header block ends at the first empty line: what follows would be the body,
            // which is never shown.
            break;
        }
        let clean = strip_controls(raw);
        let clean = defang(&clean);
        // A continuation line keeps its leading whitespace (folded header).
        let folded = raw.starts_with([' ', '\t']);
        // Leading whitespace that stripping made (a NEL, a separator) must not turn a line into
        // a continuation; a line that cleaning emptied must not become the empty line that ends
        // the block (found by the property test below).
        let clean = clean.trim_start();
        if clean.trim_end().is_empty() {
            shown += line.len() + 1;
            continue;
        }
        if out.len() + clean.len() + 2 > max_bytes {
            truncated = true;
            break;
        }
        if folded && !out.is_empty() {
            out.push(' ');
        }
        out.push_str(clean);
        out.push('\n');
        shown += line.len() + 1;
    }
    if truncated {
        out.push_str(&format!(
            "X-Mailgate-Truncated: header block cut at {max_bytes} bytes; {} of {total} bytes not shown\n",
            total.saturating_sub(shown)
        ));
    }
    out
}

/// A value made safe for one header line: no control character, no line break, runs of
/// whitespace collapsed, trimmed.
pub fn header_line(s: &str) -> String {
    // A template's trailing line break (or spaces) would only be trimmed.
    let t = s.trim_end_matches(['\n', '\r', ' ', '\t']);
    if is_clean_line(t) {
        return t.to_string();
    }
    header_line_slow(s)
}

/// `header_line` without the shortcut.
fn header_line_slow(s: &str) -> String {
    let s = strip_controls(s);
    let mut out = String::with_capacity(s.len());
    let mut last_space = true;
    for c in s.chars() {
        if c.is_whitespace() {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    let len = out.trim_end().len();
    out.truncate(len);
    out
}

/// Whether `header_line` would return `s` unchanged: no character to strip, no whitespace but
/// single spaces between words. Decided in one pass, as most subjects are like that.
fn is_clean_line(s: &str) -> bool {
    let mut last_space = true;
    for c in s.chars() {
        if c == ' ' {
            if last_space {
                return false;
            }
            last_space = true;
        } else if (' '..='~').contains(&c)
            || (c > '\u{7F}' && !c.is_whitespace() && matches!(classify(c), Class::Keep))
        {
            last_space = false;
        } else {
            return false;
        }
    }
    !last_space || s.is_empty()
}

/// Printable ASCII only (ids in our own headers): anything else becomes `_`, cut at 200.
pub fn header_token(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_become_one_space_and_controls_vanish() {
        assert_eq!(strip_controls("a\r\nBcc: x@y\u{0}z"), "a Bcc: x@yz");
        assert_eq!(
            strip_controls("tab\there\u{2028}sep\u{85}nel"),
            "tab here sep nel"
        );
        assert!(matches!(strip_controls("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn bidi_overrides_are_stripped_so_the_real_extension_shows() {
        assert_eq!(strip_controls("invoice_\u{202E}fdp.exe"), "invoice_fdp.exe");
        // Right-to-left letters themselves stay.
        assert_eq!(strip_controls("שלום مرحبا"), "שלום مرحبا");
        // Emoji sequences keep their zero-width joiner.
        assert_eq!(strip_controls("👨\u{200D}👩"), "👨\u{200D}👩");
    }

    #[test]
    fn links_are_made_inert_and_defanging_is_idempotent() {
        assert_eq!(
            defang("see http://evil.example/x"),
            "see hxxp://evil[.]example/x"
        );
        assert_eq!(
            defang("HTTPS://a.b.example:8443/p?q=1.2"),
            "hxxps://a[.]b[.]example:8443/p?q=1.2"
        );
        assert_eq!(
            defang("go to www.evil.example now"),
            "go to www[.]evil[.]example now"
        );
        assert_eq!(defang("ftp://files.example"), "fxp://files[.]example");
        let once = defang("http://evil.example/x").into_owned();
        assert_eq!(defang(&once), once);
        assert_eq!(defang("report.pdf.exe"), "report.pdf.exe");
        assert_eq!(
            defang("a-http://b.c/http://d.e"),
            "a-hxxp://b[.]c/hxxp://d[.]e"
        );
    }

    #[test]
    fn long_values_are_cut_with_a_marker_counting_the_rest() {
        let s = "é".repeat(30);
        let c = cap(&s, 20, Lang::En);
        assert!(c.starts_with(&"é".repeat(20)));
        assert!(c.ends_with("[cut: 10 more characters]"), "{c}");
        assert_eq!(cap("short", 20, Lang::En), "short");
    }

    #[test]
    fn header_block_keeps_lines_and_cuts_at_a_line_boundary() {
        let block =
            "From: a@b\r\nSubject: x\r\n\tfolded\r\nX-Evil: \u{0}http://evil.example\r\n\r\nbody";
        assert_eq!(
            header_block(block, 1000),
            "From: a@b\nSubject: x\n folded\nX-Evil: hxxp://evil[.]example\n"
        );
        // A line that cleaning empties (NUL, NEL) is dropped, not left as an empty line that
        // would end the attached header block early; a NEL does not make a continuation.
        assert_eq!(header_block("\u{85}\n\0\nA: b\n", 100), "A: b\n");
        assert_eq!(header_block("\u{85}X: y\n", 100), "X: y\n");
        let cut = header_block(block, 25);
        assert!(cut.starts_with("From: a@b\nSubject: x\n"), "{cut}");
        assert!(cut.contains("X-Mailgate-Truncated"), "{cut}");
    }

    proptest::proptest! {
        #[test]
        fn sanitized_text_has_no_control_and_defanging_is_stable(s in "\\PC*|(.|\r|\n|\u{202E}|http://a.b|www.)*") {
            let san = Sanitizer { max_chars: 50, lang: Lang::De };
            let out = san.text(&s);
            let bad = out.chars().any(|c| c.is_control() || ('\u{202A}'..='\u{202E}').contains(&c));
            proptest::prop_assert!(!bad, "control character left in {:?}", out);
            let d = defang(&s).into_owned();
            proptest::prop_assert_eq!(defang(&d).into_owned(), d);
            proptest::prop_assert!(!header_line(&s).contains(['\r', '\n']));
        }
    }

    #[test]
    fn header_line_takes_its_shortcut_only_when_the_full_pass_would_change_nothing() {
        for s in [
            "",
            " ",
            "a",
            "Invoice #4471 – please pay",
            "a  b",
            " a",
            "a ",
            "a\u{A0}b",
            "a\u{202E}b",
            "a\tb",
            "a\u{7F}b",
            "🎉 مرحبا שלום",
            "x\u{2028}y",
            "=?utf-8?B?SGVsbG8=?= hi",
            "a b\n",
            "a b \r\n",
            "a  b\n",
            "\n",
            " \n",
        ] {
            assert_eq!(header_line(s), header_line_slow(s), "{s:?}");
        }
    }

    #[test]
    fn header_line_never_contains_a_line_break() {
        assert_eq!(header_line(" a\r\n\r\nBcc: b  c \n"), "a Bcc: b c");
        assert_eq!(header_token("id 1\r\n"), "id_1__");
    }

    /// Strings that try to break out of a header: CR, LF, NEL, line/paragraph separators,
    /// encoded words, a would-be `Bcc:` and ordinary text.
    const HOSTILE: &str = "(\\PC|\r|\n|\r\n|\u{85}|\u{2028}|\u{2029}|\u{0}|=\\?utf-8\\?B\\?QmNjOg==\\?=|Bcc: v@evil.example|: |<|>|@)*";

    proptest::proptest! {
        /// Our own id headers and the attached header block carry no line break of the input:
        /// a token is one printable-ASCII line; the block is `\n`-terminated lines without CR,
        /// none empty (an empty line would end the attachment's header block early).
        #[test]
        fn header_tokens_and_header_blocks_keep_input_line_breaks_out(s in HOSTILE, max in 0usize..400) {
            let tok = header_token(&s);
            proptest::prop_assert!(tok.chars().all(|c| c.is_ascii_graphic()), "{:?}", tok);
            let block = header_block(&s, max);
            proptest::prop_assert!(!block.contains('\r'), "{:?}", block);
            proptest::prop_assert!(block.is_empty() || block.ends_with('\n'));
            proptest::prop_assert!(!block.contains("\n\n") && !block.starts_with(['\n', ' ']), "{:?}", block);
        }
    }

    /// A renderer over the render tests' config (every header option on) and the header names
    /// of its benign rule notice, built once.
    fn renderer() -> &'static (crate::render::Renderer, std::collections::BTreeSet<String>) {
        use crate::render::{samples, Request};
        static R: std::sync::OnceLock<(
            crate::render::Renderer,
            std::collections::BTreeSet<String>,
        )> = std::sync::OnceLock::new();
        R.get_or_init(|| {
            struct NoEnv;
            impl crate::config::Env for NoEnv {
                fn var(&self, _: &str) -> Option<String> {
                    None
                }
            }
            let config = crate::config::Config::from_toml(
                include_str!("../../tests/fixtures/render/config.toml"),
                std::path::Path::new("."),
                &NoEnv,
            )
            .expect("render test config");
            let r = crate::render::Renderer::new(&config, &prometheus::Registry::new())
                .expect("renderer");
            let [(_, Request::Rule(n)), _] = samples::requests(samples::Schema::Rule) else {
                panic!("rule samples")
            };
            let names = header_names(&r.render(&Request::Rule(n)).bytes);
            (r, names)
        })
    }

    /// The names of a message's header fields; fails on a header line end that is not CRLF or
    /// a line that is neither a field nor a folded continuation.
    fn header_names(bytes: &[u8]) -> std::collections::BTreeSet<String> {
        let text = std::str::from_utf8(bytes).expect("message is UTF-8");
        let head = &text[..text.find("\r\n\r\n").expect("end of headers")];
        assert!(
            !head.replace("\r\n", "").contains(['\r', '\n']),
            "bare CR or LF in the header block: {head:?}"
        );
        head.split("\r\n")
            .filter(|l| !l.starts_with([' ', '\t']))
            .map(|l| {
                let (name, _) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("not a header field: {l:?}"));
                assert!(
                    !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                    "bad field name {name:?}"
                );
                name.to_ascii_lowercase()
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        /// End to end: a rule notice whose every event string (subject, sender, ids, rule and
        /// object names, recipient, original headers) is hostile still has a header block of
        /// CRLF-terminated fields, the same fields as a benign notice (nothing injected), and a
        /// one-line subject.
        #[test]
        fn no_event_string_adds_a_header_or_a_line_break_to_a_rendered_notice(
            subject in HOSTILE, sender in HOSTILE, smtp_id in HOSTILE, gateway_id in HOSTILE,
            rule_name in HOSTILE, object in HOSTILE, recipient in HOSTILE, headers in HOSTILE,
            group in 0usize..4,
        ) {
            use crate::render::{samples, Request};
            let (r, benign) = renderer();
            let [(_, Request::Rule(mut n)), _] = samples::requests(samples::Schema::Rule) else {
                panic!("rule samples")
            };
            let mut v = (*n.verdict).clone();
            v.subject = Some(subject);
            v.sender = sender;
            v.smtp_message_id = Some(smtp_id);
            v.message_id = gateway_id;
            v.original_headers = Some(headers);
            v.triggered_rules[0].rule_name = Some(rule_name);
            v.triggered_rules[0].detections[0].object_name = Some(object);
            n.rules = crate::render::RuleRef::all(&v);
            n.verdict = std::sync::Arc::new(v);
            n.group = crate::config::NotifyGroup::ALL[group];
            n.template = format!("rule/{}", n.group.as_str());
            n.recipient = recipient;
            let out = r.render(&Request::Rule(n));
            proptest::prop_assert!(!out.subject.contains(['\r', '\n']), "{:?}", out.subject);
            let names = header_names(&out.bytes);
            proptest::prop_assert!(names.is_subset(benign), "{:?} not within {:?}", names, benign);
        }
    }
}
