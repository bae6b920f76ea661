//! The message itself, built with lettre: UTF-8 throughout, RFC 2047 headers, `From` / `Reply-To`
//! from `[sender]`, the auto-reply suppressors, a deterministic `Message-ID` and deterministic
//! MIME boundaries (so the same request gives the same bytes), optional HTML alternative and
//! optional `text/rfc822-headers` attachment.

use super::sanitize::header_token;
use crate::event::time::Timestamp;
use email_encoding::headers::writer::EmailWriter;
use lettre::address::Envelope;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use sha2::{Digest, Sha256};
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
    pub text: String,
    /// HTML body: the message becomes multipart/alternative.
    pub html: Option<String>,
    /// A header block to attach as `text/rfc822-headers`.
    pub headers_attachment: Option<String>,
    /// `Date`.
    pub date: Timestamp,
    /// Add `X-Mailgate-Notification-ID` (and the next one).
    pub unique_header: bool,
    /// The gateway's message id, for `X-Mailgate-Message-ID`.
    pub gateway_message_id: Option<&'a str>,
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

/// Builds the complete message (CRLF line ends).
pub fn build(origin: &Origin, mail: Mail<'_>) -> Result<Vec<u8>, String> {
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
    let boundary = |n: u8| format!("=_mailgate_{}_{n}", &mail.ids.digest[..24]);
    let text = SinglePart::plain(mail.text);
    let body = mail.html.map(|html| {
        MultiPart::alternative()
            .boundary(boundary(1))
            .singlepart(text.clone())
            .singlepart(SinglePart::html(html))
    });
    let message = match (body, mail.headers_attachment) {
        (body, Some(headers)) => {
            let ct = ContentType::parse("text/rfc822-headers; charset=utf-8")
                .map_err(|e| e.to_string())?;
            let attachment = Attachment::new("original-headers.txt".into()).body(headers, ct);
            let mixed = MultiPart::mixed().boundary(boundary(0));
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
