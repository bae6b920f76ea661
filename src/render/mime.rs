//! The message itself, written by hand the way lettre's builder writes it: UTF-8 throughout, RFC 2047 headers, `From` / `Reply-To`
//! from `[sender]`, the auto-reply suppressors, a deterministic `Message-ID` and deterministic
//! MIME boundaries (so the same request gives the same bytes), optional HTML alternative and
//! optional `text/rfc822-headers` attachment.

use super::sanitize::header_token;
use crate::event::time::Timestamp;
use chrono::DateTime;
use email_encoding::headers::writer::EmailWriter;
use lettre::address::Envelope;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use sha2::{Digest, Sha256};
use std::fmt::{self, Write as _};
use std::time::SystemTime;

/// The ids of one notification, all derived from the same digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// SHA-256 of (event id, kind, group, template, recipients), hex.
    pub digest: String,
    /// `%NOTIFICATION_ID%`: the first 16 hex digits.
    pub notification_id: String,
    /// `<32 hex digits.mailgate-notify@domain>`.
    pub message_id: String,
}

/// Derives the ids. Fields are length-prefixed so that no two inputs collide by concatenation;
/// recipients are sorted so that their order does not matter.
pub fn ids(
    event_id: &str,
    kind: &str,
    group: &str,
    template: &str,
    recipients: &[String],
    domain: &str,
) -> Ids {
    let mut h = Sha256::new();
    let mut field = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    field(event_id);
    field(kind);
    field(group);
    field(template);
    let mut sorted: Vec<String> = recipients.iter().map(|r| r.to_ascii_lowercase()).collect();
    sorted.sort();
    sorted.dedup();
    for r in &sorted {
        field(r);
    }
    // By hand: a `format!` per byte was a fifth of a cached rule render (issue 9 profile).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digest = String::with_capacity(64);
    for b in h.finalize() {
        digest.push(char::from(HEX[usize::from(b >> 4)]));
        digest.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    Ids {
        notification_id: digest[..16].to_string(),
        message_id: format!("<{}.mailgate-notify@{}>", &digest[..32], domain),
        digest,
    }
}

/// The sender side of every message, from `[sender]`.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `From`.
    pub from: Mailbox,
    /// `Reply-To`.
    pub reply_to: Option<Mailbox>,
}

/// Everything that goes into one message.
pub struct Mail<'a> {
    /// Ids (Message-ID, notification id, boundaries).
    pub ids: &'a Ids,
    /// Valid recipient addresses (`To`).
    pub to: &'a [lettre::Address],
    /// Subject, one line, already control-free.
    pub subject: &'a str,
    /// Plain-text body.
    pub text: &'a str,
    /// HTML body: the message becomes multipart/alternative.
    pub html: Option<&'a str>,
    /// A header block to attach as `text/rfc822-headers`.
    pub headers_attachment: Option<&'a str>,
    /// `Date`.
    pub date: Timestamp,
    /// Add `X-Mailgate-Notification-ID` (and the next one).
    pub unique_header: bool,
    /// The gateway's message id, for `X-Mailgate-Message-ID`.
    pub gateway_message_id: Option<&'a str>,
}

/// The MIME boundary `n` of a message: deterministic, from its digest.
fn boundary(ids: &Ids, n: u8) -> String {
    format!("=_mailgate_{}_{n}", &ids.digest[..24])
}

/// Builds the complete message (CRLF line ends) straight into one buffer.
///
/// The bytes are those lettre's builder gives for the same message ([`build_with_lettre`],
/// held to that byte for byte by the tests): same header order, the same folding and RFC 2047
/// encoding (lettre's own encoder, `email-encoding`), the same choice of transfer encoding.
/// What it saves is lettre's intermediate structures: every header kept as three `String`s, a
/// copy of each body part, the `To` list parsed again for each address, and a CRLF
/// conversion that shifts the whole body once per line; on a rule notification the build was
/// three quarters of the render (BENCHMARKS.md, "Rendering").
pub fn build(origin: &Origin, mail: Mail<'_>) -> Result<Vec<u8>, String> {
    let body_len = mail.text.len() + mail.html.map_or(0, str::len);
    let attachment_len = mail.headers_attachment.map_or(0, str::len);
    // Base64 and quoted-printable grow a body by a third or so; headers fit in 1 KiB.
    let mut out = String::with_capacity(1024 + (body_len + attachment_len) * 4 / 3);
    write_message(&mut out, origin, &mail).map_err(|_| "formatting the message".to_string())?;
    Ok(out.into_bytes())
}

fn write_message(out: &mut String, origin: &Origin, mail: &Mail<'_>) -> fmt::Result {
    mailbox_header(out, "From", &origin.from)?;
    out.push_str("Date: ");
    out.push_str(&rfc5322_date(mail.date));
    out.push_str("\r\n");
    header(out, "Message-ID", &mail.ids.message_id)?;
    header(out, "Auto-Submitted", "auto-generated")?;
    header(out, "X-Auto-Response-Suppress", "All")?;
    if !mail.to.is_empty() {
        out.push_str("To: ");
        {
            let mut w = EmailWriter::new(out, "To: ".len(), 0, false);
            for (i, a) in mail.to.iter().enumerate() {
                if i > 0 {
                    w.write_char(',')?;
                    w.space();
                }
                w.write_str(a.as_ref())?;
            }
        }
        out.push_str("\r\n");
    }
    if let Some(r) = &origin.reply_to {
        mailbox_header(out, "Reply-To", r)?;
    }
    if mail.subject.contains("=?") {
        out.push_str("Subject: ");
        {
            let mut w = EmailWriter::new(out, "Subject: ".len(), 0, false);
            email_encoding::headers::rfc2047::encode(mail.subject, &mut w)?;
        }
        out.push_str("\r\n");
    } else {
        header(out, "Subject", mail.subject)?;
    }
    if mail.unique_header {
        header(out, "X-Mailgate-Notification-ID", &mail.ids.notification_id)?;
        if let Some(id) = mail.gateway_message_id {
            header(out, "X-Mailgate-Message-ID", &header_token(id))?;
        }
    }
    out.push_str("MIME-Version: 1.0\r\n");
    match (mail.html, mail.headers_attachment) {
        (html, Some(headers)) => {
            let mixed = boundary(mail.ids, 0);
            multipart_header(out, "mixed", &mixed)?;
            part_delimiter(out, &mixed);
            match html {
                Some(html) => alternative(out, mail.ids, mail.text, html)?,
                None => single_part(out, "text/plain; charset=utf-8", None, mail.text),
            }
            part_delimiter(out, &mixed);
            single_part(
                out,
                "text/rfc822-headers; charset=utf-8",
                Some("attachment; filename=\"original-headers.txt\""),
                headers,
            );
            close_delimiter(out, &mixed);
        }
        (Some(html), None) => alternative(out, mail.ids, mail.text, html)?,
        (None, None) => single_part(out, "text/plain; charset=utf-8", None, mail.text),
    }
    Ok(())
}

/// A header as lettre's `HeaderValue::new` writes it: words (split after each space) of
/// printable ASCII as they are, folded at spaces before 78 columns; runs of words with
/// anything else as RFC 2047 encoded words.
fn header(out: &mut String, name: &str, value: &str) -> fmt::Result {
    out.push_str(name);
    out.push_str(": ");
    {
        let mut w = EmailWriter::new(out, name.len() + ": ".len(), 0, false);
        // Words to encode are contiguous: one range of `value`, flushed before the next
        // plain word and at the end.
        let mut pending: Option<(usize, usize)> = None;
        let mut at = 0;
        for word in value.split_inclusive(' ') {
            let range = (at, at + word.len());
            at = range.1;
            if word.bytes().all(header_safe) {
                flush_encoded(&mut w, value, pending.take())?;
                w.folding().write_str(word)?;
            } else {
                pending = Some(pending.map_or(range, |(start, _)| (start, range.1)));
            }
        }
        flush_encoded(&mut w, value, pending)?;
    }
    out.push_str("\r\n");
    Ok(())
}

/// lettre's `allowed_char`: what a header may carry unencoded (ASCII but NUL, CR and LF).
const fn header_safe(c: u8) -> bool {
    matches!(c, 1..=9 | 11 | 12 | 14..=127)
}

fn flush_encoded(
    w: &mut EmailWriter<'_>,
    value: &str,
    range: Option<(usize, usize)>,
) -> fmt::Result {
    let Some((start, end)) = range else {
        return Ok(());
    };
    let words = &value[start..end];
    let prefix = words.trim_end_matches(' ');
    email_encoding::headers::rfc2047::encode(prefix, w)?;
    for _ in prefix.len()..words.len() {
        w.space();
    }
    Ok(())
}

/// `From` / `Reply-To`: one mailbox, its display name as a quoted string (lettre's
/// `Mailbox::encode`).
fn mailbox_header(out: &mut String, name: &str, m: &Mailbox) -> fmt::Result {
    out.push_str(name);
    out.push_str(": ");
    {
        let mut w = EmailWriter::new(out, name.len() + ": ".len(), 0, false);
        if let Some(display) = &m.name {
            email_encoding::headers::quoted_string::encode(display, &mut w)?;
            w.space();
            w.write_char('<')?;
            w.write_str(m.email.as_ref())?;
            w.write_char('>')?;
        } else {
            w.write_str(m.email.as_ref())?;
        }
    }
    out.push_str("\r\n");
    Ok(())
}

/// `Date:` in RFC 5322 form, as lettre writes it (`Tue, 01 Dec 2026 23:00:00 +0000`). lettre
/// goes through `httpdate`, which panics before 1970 and after 9999; an event's time is the
/// gateway's word, so it is clamped to that range here instead.
fn rfc5322_date(t: Timestamp) -> String {
    /// 9999-12-31T23:59:59Z.
    const LAST: i64 = 253_402_300_799;
    DateTime::from_timestamp(t.timestamp().clamp(0, LAST), 0)
        .unwrap_or(DateTime::UNIX_EPOCH)
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

fn multipart_header(out: &mut String, kind: &str, boundary: &str) -> fmt::Result {
    header(
        out,
        "Content-Type",
        &format!("multipart/{kind}; boundary=\"{boundary}\""),
    )?;
    out.push_str("\r\n");
    Ok(())
}

fn part_delimiter(out: &mut String, boundary: &str) {
    out.push_str("--");
    out.push_str(boundary);
    out.push_str("\r\n");
}

fn close_delimiter(out: &mut String, boundary: &str) {
    out.push_str("--");
    out.push_str(boundary);
    out.push_str("--\r\n");
}

fn alternative(out: &mut String, ids: &Ids, text: &str, html: &str) -> fmt::Result {
    let b = boundary(ids, 1);
    multipart_header(out, "alternative", &b)?;
    part_delimiter(out, &b);
    single_part(out, "text/plain; charset=utf-8", None, text);
    part_delimiter(out, &b);
    single_part(out, "text/html; charset=utf-8", None, html);
    close_delimiter(out, &b);
    Ok(())
}

/// One body part: its headers, a blank line, the body in the transfer encoding lettre would
/// choose for it (7bit if it is ASCII in short lines, else quoted-printable or base64 by
/// which is shorter; never 8bit, the relay may not announce `8BITMIME`), CRLF line ends.
fn single_part(out: &mut String, content_type: &str, disposition: Option<&str>, body: &str) {
    if let Some(d) = disposition {
        out.push_str("Content-Disposition: ");
        out.push_str(d);
        out.push_str("\r\n");
    }
    out.push_str("Content-Type: ");
    out.push_str(content_type);
    out.push_str("\r\nContent-Transfer-Encoding: ");
    match choose_cte(body) {
        Cte::SevenBit => {
            out.push_str("7bit\r\n\r\n");
            push_crlf(out, body);
        }
        Cte::QuotedPrintable => {
            out.push_str("quoted-printable\r\n\r\n");
            push_quoted_printable(out, body);
        }
        Cte::Base64 => {
            out.push_str("base64\r\n\r\n");
            let mut crlf = String::with_capacity(body.len() + body.len() / 32);
            push_crlf(&mut crlf, body);
            // Writing to a String cannot fail.
            let _ = email_encoding::body::base64::encode(crlf.as_bytes(), out);
        }
    }
    out.push_str("\r\n");
}

/// Appends `s` with every LF that has no CR before it made a CRLF (lettre's rule: a lone CR
/// stays as it is).
fn push_crlf(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(i) = rest.find('\n') {
        let line = &rest[..i];
        out.push_str(line);
        // The byte before an LF at the start of `rest` is the previous LF (or nothing).
        out.push_str(if line.ends_with('\r') { "\n" } else { "\r\n" });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// Quoted-printable lines end at 76 columns (RFC 2045 6.7).
const QP_LIMIT: usize = 76;

/// Appends `body` quoted-printable (RFC 2045 6.7) with its line ends made CRLF: the bytes
/// lettre's encoder (`quoted_printable::encode_to_str` after lettre's CRLF conversion) gives,
/// held to them by a test, but in one pass that copies runs of plain text whole; that encoder
/// pushed a `char` at a time and was 40% of the MIME build (callgrind, BENCHMARKS.md).
fn push_quoted_printable(out: &mut String, body: &str) {
    let b = body.as_bytes();
    let mut on_line = 0;
    // Where the last piece written to the line starts: a soft break that no longer fits after
    // it goes before it.
    let mut backup = out.len();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' || (c == b'\r' && b.get(i + 1) == Some(&b'\n')) {
            qp_trailing_whitespace(out, &mut on_line, &mut backup);
            out.push_str("\r\n");
            on_line = 0;
            i += if c == b'\r' { 2 } else { 1 };
            continue;
        }
        if QP_LIMIT - on_line >= 3 && !qp_needs_encoding(c) {
            let end = b.len().min(i + QP_LIMIT - on_line - 2);
            let mut j = i + 1;
            while j < end && !qp_needs_encoding(b[j]) {
                j += 1;
            }
            // A run is ASCII, so it starts and ends on character boundaries.
            out.push_str(&body[i..j]);
            on_line += j - i;
            backup = out.len();
            i = j;
            continue;
        }
        let hex;
        let piece = if qp_needs_encoding(c) {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            hex = [b'=', HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]];
            // `hex` is ASCII by construction.
            std::str::from_utf8(&hex).unwrap_or("=3F")
        } else {
            &body[i..i + 1]
        };
        qp_append(out, piece, &mut on_line, &mut backup);
        i += 1;
    }
    qp_trailing_whitespace(out, &mut on_line, &mut backup);
}

/// Needs `=XX`: anything but printable ASCII and tab, and `=` itself.
fn qp_needs_encoding(c: u8) -> bool {
    QP_ENCODE[usize::from(c)]
}

const QP_ENCODE: [bool; 256] = {
    let mut t = [true; 256];
    let mut c = b' ';
    while c <= b'~' {
        t[c as usize] = c == b'=';
        c += 1;
    }
    t[b'\t' as usize] = false;
    t
};

/// A body's transfer encoding.
enum Cte {
    SevenBit,
    QuotedPrintable,
    Base64,
}

/// lettre's choice for a text body, without 8BITMIME (email-encoding's `Encoding::choose`,
/// which this replaces for speed; the tests hold the two to the same bytes): 7bit for ASCII in
/// lines shorter than 76, else quoted-printable unless more than a third of the bytes would
/// need escaping, then base64.
fn choose_cte(body: &str) -> Cte {
    let mut last = 0;
    // The same arithmetic as email-encoding's `line_too_long`: a line's length counts from
    // the previous LF itself.
    let mut long = false;
    for (i, _) in body.match_indices('\n') {
        if i - last >= 76 {
            long = true;
            break;
        }
        last = i;
    }
    long = long || body.len() - last >= 76;
    if body.is_ascii() && !long {
        return Cte::SevenBit;
    }
    let escaped = body
        .bytes()
        .filter(|&c| !matches!(c, b'\t' | b' '..=b'~'))
        .count();
    if escaped <= body.len() / 3 {
        Cte::QuotedPrintable
    } else {
        Cte::Base64
    }
}

/// Appends one piece (a character or an `=XX`), breaking the line first if it would not fit.
fn qp_append(out: &mut String, piece: &str, on_line: &mut usize, backup: &mut usize) {
    if *on_line + piece.len() > QP_LIMIT {
        if *on_line == QP_LIMIT {
            // No room left even for the `=` of a soft break: it goes before the last piece.
            *on_line = out.len() - *backup;
            out.insert_str(*backup, "=\r\n");
        } else {
            out.push_str("=\r\n");
            *on_line = 0;
        }
    }
    out.push_str(piece);
    *on_line += piece.len();
    *backup = out.len() - piece.len();
}

/// A space or tab may not end an encoded line: the last one becomes `=20` / `=09`.
fn qp_trailing_whitespace(out: &mut String, on_line: &mut usize, backup: &mut usize) {
    let encoded = match out.as_bytes().last() {
        Some(b' ') => "=20",
        Some(b'\t') => "=09",
        _ => return,
    };
    *on_line -= 1;
    out.pop();
    qp_append(out, encoded, on_line, backup);
}

fn raw(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_string())
}

/// RFC 2047 as lettre does it, except that a subject that itself contains an encoded word
/// (`=?utf-8?b?…?=` from an attacker) is encoded as a whole: the reader then sees that text
/// literally instead of a client decoding it into something else.
fn subject_header(subject: &str) -> Option<HeaderValue> {
    if !subject.contains("=?") {
        return None;
    }
    let mut encoded = String::with_capacity(subject.len() * 2);
    {
        let mut w = EmailWriter::new(&mut encoded, "Subject: ".len(), 0, false);
        email_encoding::headers::rfc2047::encode(subject, &mut w).ok()?;
    }
    Some(HeaderValue::dangerous_new_pre_encoded(
        HeaderName::new_from_ascii_str("Subject"),
        subject.to_string(),
        encoded,
    ))
}

/// The same message built with lettre's `Message` builder: the reference [`build`] is held to
/// byte for byte (tests, fuzzing) and the benchmarks' baseline. Not used to send.
pub fn build_with_lettre(origin: &Origin, mail: Mail<'_>) -> Result<Vec<u8>, String> {
    let mut b = Message::builder()
        .from(origin.from.clone())
        .date(SystemTime::from(mail.date))
        .message_id(Some(mail.ids.message_id.clone()))
        // The SMTP envelope travels beside the bytes (`Rendered`); lettre's own is only a
        // placeholder, so that a notice whose every address was invalid still formats.
        .envelope(Envelope::new(None, vec![origin.from.email.clone()]).map_err(|e| e.to_string())?)
        .raw_header(raw("Auto-Submitted", "auto-generated"))
        .raw_header(raw("X-Auto-Response-Suppress", "All"));
    for a in mail.to {
        b = b.to(Mailbox::new(None, a.clone()));
    }
    if let Some(r) = &origin.reply_to {
        b = b.reply_to(r.clone());
    }
    b = match subject_header(mail.subject) {
        Some(h) => b.raw_header(h),
        None => b.subject(mail.subject),
    };
    if mail.unique_header {
        b = b.raw_header(raw("X-Mailgate-Notification-ID", &mail.ids.notification_id));
        if let Some(id) = mail.gateway_message_id {
            b = b.raw_header(raw("X-Mailgate-Message-ID", &header_token(id)));
        }
    }
    let text = SinglePart::plain(mail.text.to_string());
    let body = mail.html.map(|html| {
        MultiPart::alternative()
            .boundary(boundary(mail.ids, 1))
            .singlepart(text.clone())
            .singlepart(SinglePart::html(html.to_string()))
    });
    let message = match (body, mail.headers_attachment) {
        (body, Some(headers)) => {
            let ct = ContentType::parse("text/rfc822-headers; charset=utf-8")
                .map_err(|e| e.to_string())?;
            let attachment =
                Attachment::new("original-headers.txt".into()).body(headers.to_string(), ct);
            let mixed = MultiPart::mixed().boundary(boundary(mail.ids, 0));
            let mixed = match body {
                Some(alt) => mixed.multipart(alt),
                None => mixed.singlepart(text),
            };
            b.multipart(mixed.singlepart(attachment))
        }
        (Some(alt), None) => b.multipart(alt),
        (None, None) => b.singlepart(text),
    };
    message.map(|m| m.formatted()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    fn origin(display: Option<&str>, reply_to: bool) -> Origin {
        let from: lettre::Address = "notify@gw.example.com".parse().unwrap();
        Origin {
            from: Mailbox::new(display.map(str::to_string), from),
            reply_to: reply_to.then(|| {
                Mailbox::new(
                    Some("Mail Admins".into()),
                    "admins@example.com".parse().unwrap(),
                )
            }),
        }
    }

    fn ids() -> Ids {
        super::ids(
            "ev-1",
            "rule",
            "general",
            "rule/general",
            &[],
            "gw.example.com",
        )
    }

    fn at(ms: i64) -> Timestamp {
        Utc.timestamp_millis_opt(ms).single().unwrap()
    }

    /// Both writers on the same message; the bytes must be equal.
    #[allow(clippy::too_many_arguments)]
    fn same_bytes(
        origin: &Origin,
        to: &[lettre::Address],
        subject: &str,
        text: &str,
        html: Option<&str>,
        attachment: Option<&str>,
        date: Timestamp,
        gateway_message_id: Option<&str>,
    ) -> (Vec<u8>, Vec<u8>) {
        let ids = ids();
        let mail = || Mail {
            ids: &ids,
            to,
            subject,
            text,
            html,
            headers_attachment: attachment,
            date,
            unique_header: true,
            gateway_message_id,
        };
        (
            build(origin, mail()).unwrap(),
            build_with_lettre(origin, mail()).unwrap(),
        )
    }

    fn assert_same(ours: &[u8], lettre: &[u8]) {
        assert_eq!(
            String::from_utf8_lossy(ours),
            String::from_utf8_lossy(lettre),
            "our writer and lettre's builder differ"
        );
    }

    #[test]
    fn every_shape_of_message_is_byte_identical_to_lettre() {
        let to: Vec<lettre::Address> = ["a@example.com", "b.very.long.local.part@sub.example.org"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let long = "A line that is far longer than seventy-six characters, so it must be quoted-printable.\n";
        let cyrillic = "Письмо отклонено: вирус EICAR-Test-File обнаружен во вложении.\n";
        let texts = [
            "Short ASCII.\nTwo lines.\n",
            long,
            cyrillic,
            "\nleading LF\r\nCRLF\rlone CR\n",
        ];
        let subjects = [
            "[mailgate] Virus found",
            "Вирус найден в сообщении от sender@example.com",
            "=?utf-8?b?Zm9v?= spoofed encoded word",
            "a subject with    many   spaces and a very long tail that must fold somewhere past 78",
            "",
        ];
        for (i, text) in texts.iter().enumerate() {
            for subject in subjects {
                for (html, attachment) in [
                    (None, None),
                    (Some("<p>Héllo</p>\n"), None),
                    (None, Some("Received: from x\nSubject: y\n")),
                    (Some("<p>x</p>"), Some("From: z\n")),
                ] {
                    let origin = origin(
                        [None, Some("Mail Gateway"), Some("Почтовый шлюз \"KSMG\"")][i % 3],
                        i % 2 == 0,
                    );
                    let (ours, theirs) = same_bytes(
                        &origin,
                        &to[..i % 3],
                        subject,
                        text,
                        html,
                        attachment,
                        at(1_764_633_600_123),
                        Some("<gw-42@example.com>"),
                    );
                    assert_same(&ours, &theirs);
                }
            }
        }
    }

    #[test]
    fn an_event_time_outside_1970_to_9999_is_clamped_not_a_panic() {
        let ids = ids();
        let origin = origin(None, false);
        let mail = |date| Mail {
            ids: &ids,
            to: &[],
            subject: "s",
            text: "t",
            html: None,
            headers_attachment: None,
            date,
            unique_header: false,
            gateway_message_id: None,
        };
        let before = String::from_utf8(build(&origin, mail(at(-86_400_000))).unwrap()).unwrap();
        assert!(
            before.contains("Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"),
            "{before}"
        );
        let after = Utc.with_ymd_and_hms(12000, 1, 1, 0, 0, 0).single().unwrap();
        let after = String::from_utf8(build(&origin, mail(after)).unwrap()).unwrap();
        assert!(
            after.contains("Date: Fri, 31 Dec 9999 23:59:59 +0000\r\n"),
            "{after}"
        );
    }

    /// lettre's body path for quoted-printable: CRLF conversion, then the crate's encoder.
    fn lettre_qp(body: &str) -> String {
        let mut crlf = String::new();
        push_crlf(&mut crlf, body);
        quoted_printable::encode_to_str(crlf)
    }

    fn our_qp(body: &str) -> String {
        let mut out = String::from("Content-Transfer-Encoding: quoted-printable\r\n\r\n");
        let head = out.len();
        push_quoted_printable(&mut out, body);
        out.split_off(head)
    }

    #[test]
    fn quoted_printable_is_lettres_at_every_line_edge() {
        let mut cases: Vec<String> = vec![
            "".into(),
            "=".into(),
            "\r".into(),
            "a\r".into(),
            "a \r".into(),
            "trailing space \nand tab\t\r\nend ".into(),
            "\r\r\n\n\r".into(),
            "Привет, мир = hello\n".into(),
        ];
        // Every length around the 76-column limit, ending in each kind of byte.
        for n in 70..80 {
            for tail in ["", " ", "\t", "=", "é", "\r", "\n", "xy"] {
                cases.push(format!("{}{tail}", "x".repeat(n)));
                cases.push(format!("{}{tail}{}", "=".repeat(n / 3), "y".repeat(n % 7)));
            }
        }
        for c in cases {
            assert_eq!(our_qp(&c), lettre_qp(&c), "{c:?}");
        }
    }

    #[test]
    fn the_transfer_encoding_is_chosen_as_lettre_chooses_it() {
        use email_encoding::body::Encoding;
        let mut cases = vec![String::new(), "é".into(), "ab\r\n".into()];
        for n in 73..79 {
            cases.push("x".repeat(n));
            cases.push(format!("{}\n", "x".repeat(n)));
            cases.push(format!("a\n{}", "x".repeat(n)));
            cases.push(format!("a\n{}\nb", "x".repeat(n)));
        }
        // Around a third of the bytes needing escapes (each Cyrillic letter is two).
        for k in 0..12 {
            cases.push(format!("{}{}", "ж".repeat(k), "x".repeat(20)));
        }
        for c in cases {
            let ours = match choose_cte(&c) {
                Cte::SevenBit => Encoding::SevenBit,
                Cte::QuotedPrintable => Encoding::QuotedPrintable,
                Cte::Base64 => Encoding::Base64,
            };
            assert_eq!(ours, Encoding::choose(c.as_str(), false), "{c:?}");
        }
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        // Lines of mixed ASCII, Cyrillic, spaces at ends, CR and LF in any arrangement, up to
        // a few lines past the 76-column limit.
        proptest::collection::vec(
            prop_oneof![
                "[ -~]{0,90}",
                "[a-z ]{0,20}[а-я ]{0,40}",
                Just("\n".to_string()),
                Just("\r\n".to_string()),
                Just("\r".to_string()),
                Just(" \t \n".to_string()),
                Just("=".to_string()),
            ],
            0..12,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn quoted_printable_is_lettres_on_any_text(body in text_strategy()) {
            prop_assert_eq!(our_qp(&body), lettre_qp(&body));
        }

        #[test]
        fn random_messages_are_byte_identical_to_lettre(
            subject in "[ -~а-яё\u{1F600}]{0,120}",
            text in text_strategy(),
            html in proptest::option::of(text_strategy()),
            attachment in proptest::option::of(text_strategy()),
            display in proptest::option::of("[ -~é]{0,40}"),
            reply_to in any::<bool>(),
            recipients in 0usize..6,
            gateway_id in proptest::option::of("[ -~]{0,80}"),
            ms in 0i64..253_402_300_799_000,
        ) {
            let to: Vec<lettre::Address> = (0..recipients)
                .map(|i| format!("user{i}.some.name@dept{i}.example.com").parse().unwrap())
                .collect();
            let (ours, theirs) = same_bytes(
                &origin(display.as_deref(), reply_to),
                &to,
                &subject,
                &text,
                html.as_deref(),
                attachment.as_deref(),
                at(ms),
                gateway_id.as_deref(),
            );
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }
}
