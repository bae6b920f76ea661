//! What can go wrong while delivering, as one type that says whether trying again can help.
//!
//! The rule (DESIGN §4): a reply code decides where there is one — 4xx is transient, 5xx is
//! permanent (RFC 5321 §4.2.1). Without a reply code: trouble on the network, a timeout, a TLS
//! handshake that failed or a reply we could not read are transient (the relay or the path to it
//! may recover on its own, and retrying costs only time); something the relay lacks that our
//! configuration requires (STARTTLS, an AUTH mechanism, SMTPUTF8/8BITMIME) and an address that
//! does not parse are permanent, because the same message would fail the same way forever and
//! would otherwise block the partition it came from.

use std::fmt;
use std::io;
use std::time::Duration;

/// Where in the delivery an error happened; named in every error message and log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// TCP connect (name resolution included).
    Connect,
    /// Implicit TLS handshake (`tls = "tls"`).
    TlsHandshake,
    /// The relay's greeting and our EHLO.
    Hello,
    /// The STARTTLS command and the handshake after it.
    Starttls,
    /// AUTH PLAIN / LOGIN.
    Auth,
    /// `MAIL FROM`.
    MailFrom,
    /// `RCPT TO` (one recipient).
    RcptTo,
    /// The `DATA` command.
    Data,
    /// The message and its terminating `.` (the relay's final reply).
    EndOfData,
    /// `RSET` after a refused transaction.
    Reset,
    /// Writing an `.eml` file (the `file` transport).
    File,
}

impl Stage {
    /// Short stable name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::TlsHandshake => "TLS handshake",
            Stage::Hello => "greeting/EHLO",
            Stage::Starttls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "DATA",
            Stage::EndOfData => "end of data",
            Stage::Reset => "RSET",
            Stage::File => "file write",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery error. `is_retryable()` says whether the recipient stays in the outbox (retried
/// with backoff, without a time limit) or is reported as permanently failed; `error_code()` is
/// the bounded label used in metrics and dead-letter headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    /// The relay answered 4xx: try again later.
    #[error("{stage}: relay replied {code} {text}")]
    TransientReply {
        /// Command that got the reply.
        stage: Stage,
        /// The 4xx code.
        code: u16,
        /// The reply text (enhanced status code included when the relay sends one).
        text: String,
    },
    /// The relay answered 5xx: this will not work, the notification is dead-lettered.
    #[error("{stage}: relay refused with {code} {text}{hint}", hint = permanent_hint(*stage))]
    PermanentReply {
        /// Command that got the reply.
        stage: Stage,
        /// The 5xx code.
        code: u16,
        /// The reply text.
        text: String,
    },
    /// The connection failed or broke (refused, reset, closed, unreachable…).
    #[error("{stage}: {message} ({kind})")]
    Io {
        /// Where.
        stage: Stage,
        /// The I/O error kind.
        kind: io::ErrorKind,
        /// The OS or library message.
        message: String,
    },
    /// No answer in time (`smtp.connect_timeout` / `smtp.command_timeout`).
    #[error("{stage}: no answer within {}", humantime::format_duration(*.after))]
    Timeout {
        /// Where.
        stage: Stage,
        /// The timeout that expired.
        after: Duration,
    },
    /// The TLS handshake failed (certificate not trusted, name mismatch, protocol error).
    #[error("{stage}: TLS failed: {message}")]
    Tls {
        /// `TlsHandshake` or `Starttls`.
        stage: Stage,
        /// rustls' reason.
        message: String,
    },
    /// The relay's answer could not be read as an SMTP reply (or the connection closed mid-reply).
    #[error("{stage}: unreadable reply: {message}")]
    Protocol {
        /// Where.
        stage: Stage,
        /// What was wrong.
        message: String,
    },
    /// `tls = "starttls"` and the relay does not offer STARTTLS: we refuse to go on in clear text.
    #[error(
        "the relay does not offer STARTTLS, and smtp.tls = \"starttls\" forbids sending in clear \
         text (fix the relay, or set smtp.tls = \"tls\" for a port with implicit TLS)"
    )]
    StarttlsUnavailable,
    /// `smtp.username` is set and the relay offers neither AUTH PLAIN nor AUTH LOGIN.
    #[error("the relay offers no AUTH mechanism we speak (PLAIN, LOGIN); it announced: {offered}")]
    AuthUnavailable {
        /// The relay's EHLO capabilities.
        offered: String,
    },
    /// An envelope address does not parse.
    #[error("invalid envelope address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The message or envelope needs an SMTP extension the relay does not announce.
    #[error("the relay does not support {extension}, which this message needs ({why})")]
    Unsupported {
        /// `SMTPUTF8` or `8BITMIME`.
        extension: &'static str,
        /// What in the message needs it.
        why: &'static str,
    },
    /// lettre refused to build a command (a bug or an impossible input; not retried).
    #[error("{stage}: SMTP client error: {message}")]
    Client {
        /// Where.
        stage: Stage,
        /// lettre's message.
        message: String,
    },
    /// The `file` transport could not write (disk full, permissions): retried.
    #[error("file transport: {message} ({kind})")]
    File {
        /// The I/O error kind.
        kind: io::ErrorKind,
        /// The OS message.
        message: String,
    },
    /// The delivery configuration cannot be used (only returned by `start`).
    #[error("smtp configuration: {0}")]
    Config(String),
}

fn permanent_hint(stage: Stage) -> &'static str {
    match stage {
        Stage::Auth => " (check smtp.username and the password in MAILGATE_SMTP_PASSWORD or smtp.password_file)",
        _ => "",
    }
}

impl DeliverError {
    /// Every value `error_code()` can return, to pre-create metric labels.
    pub const CODES: &'static [&'static str] = &[
        "smtp_transient_reply",
        "smtp_permanent_reply",
        "smtp_io",
        "smtp_timeout",
        "smtp_tls",
        "smtp_protocol",
        "smtp_starttls_unavailable",
        "smtp_auth_unavailable",
        "invalid_address",
        "smtp_unsupported",
        "smtp_client",
        "file_io",
        "config",
    ];

    /// Whether trying again later can succeed (the recipient stays in the outbox).
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliverError::TransientReply { .. }
            | DeliverError::Io { .. }
            | DeliverError::Timeout { .. }
            | DeliverError::Tls { .. }
            | DeliverError::Protocol { .. }
            | DeliverError::File { .. } => true,
            DeliverError::PermanentReply { .. }
            | DeliverError::StarttlsUnavailable
            | DeliverError::AuthUnavailable { .. }
            | DeliverError::InvalidAddress { .. }
            | DeliverError::Unsupported { .. }
            | DeliverError::Client { .. }
            | DeliverError::Config(_) => false,
        }
    }

    /// Bounded, stable name of the error class (metric label, dead-letter header).
    pub fn error_code(&self) -> &'static str {
        match self {
            DeliverError::TransientReply { .. } => "smtp_transient_reply",
            DeliverError::PermanentReply { .. } => "smtp_permanent_reply",
            DeliverError::Io { .. } => "smtp_io",
            DeliverError::Timeout { .. } => "smtp_timeout",
            DeliverError::Tls { .. } => "smtp_tls",
            DeliverError::Protocol { .. } => "smtp_protocol",
            DeliverError::StarttlsUnavailable => "smtp_starttls_unavailable",
            DeliverError::AuthUnavailable { .. } => "smtp_auth_unavailable",
            DeliverError::InvalidAddress { .. } => "invalid_address",
            DeliverError::Unsupported { .. } => "smtp_unsupported",
            DeliverError::Client { .. } => "smtp_client",
            DeliverError::File { .. } => "file_io",
            DeliverError::Config(_) => "config",
        }
    }

    /// The relay's reply code, when the error is a reply.
    pub fn reply_code(&self) -> Option<u16> {
        match self {
            DeliverError::TransientReply { code, .. }
            | DeliverError::PermanentReply { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the connection is unusable after this error: the stream is in an unknown state
    /// (I/O, timeout, unreadable reply) or the relay said it is closing (421).
    pub fn breaks_connection(&self) -> bool {
        match self {
            DeliverError::TransientReply { code, .. } => *code == 421,
            DeliverError::PermanentReply { .. }
            | DeliverError::InvalidAddress { .. }
            | DeliverError::Unsupported { .. } => false,
            _ => true,
        }
    }

    /// Classifies a negative reply: 4xx transient, 5xx permanent. Anything else is not a
    /// negative reply and is treated as an unreadable one (transient).
    pub fn from_reply(stage: Stage, code: u16, text: impl Into<String>) -> DeliverError {
        let text = text.into();
        match code {
            400..=499 => DeliverError::TransientReply { stage, code, text },
            500..=599 => DeliverError::PermanentReply { stage, code, text },
            _ => DeliverError::Protocol {
                stage,
                message: format!("unexpected reply {code} {text}"),
            },
        }
    }

    /// Classifies an I/O error. Every kind is transient: a refused, reset or timed-out
    /// connection says nothing about the message itself.
    pub fn from_io(stage: Stage, e: &io::Error) -> DeliverError {
        DeliverError::Io {
            stage,
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    /// Classifies an error from lettre's SMTP client.
    pub(crate) fn from_lettre(stage: Stage, e: &lettre::transport::smtp::Error) -> DeliverError {
        use std::error::Error as _;
        if let Some(code) = e.status() {
            let text = e.source().map(|s| s.to_string()).unwrap_or_default();
            return DeliverError::from_reply(stage, u16::from(code), text);
        }
        let mut source = e.source();
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<io::Error>() {
                if matches!(stage, Stage::Starttls | Stage::TlsHandshake) {
                    return DeliverError::Tls {
                        stage,
                        message: io.to_string(),
                    };
                }
                return DeliverError::from_io(stage, io);
            }
            source = s.source();
        }
        if e.is_tls() || matches!(stage, Stage::Starttls | Stage::TlsHandshake) {
            DeliverError::Tls {
                stage,
                message: e.to_string(),
            }
        } else if e.is_client() {
            DeliverError::Client {
                stage,
                message: e.to_string(),
            }
        } else {
            // Response errors ("incomplete response" when the relay hangs up without a reply,
            // a malformed line) and connection errors without an I/O cause.
            DeliverError::Protocol {
                stage,
                message: e.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_4xx_reply_is_retryable_and_keeps_the_connection_except_421() {
        for code in [421u16, 450, 451, 452, 454, 499] {
            let e = DeliverError::from_reply(Stage::MailFrom, code, "4.3.0 try later");
            assert!(e.is_retryable(), "{code}");
            assert_eq!(e.error_code(), "smtp_transient_reply");
            assert_eq!(e.reply_code(), Some(code));
            assert_eq!(e.breaks_connection(), code == 421, "{code}");
        }
    }

    #[test]
    fn every_5xx_reply_is_permanent_and_keeps_the_connection() {
        for code in [500u16, 501, 530, 535, 550, 552, 553, 554, 599] {
            let e = DeliverError::from_reply(Stage::RcptTo, code, "5.1.1 no such user");
            assert!(!e.is_retryable(), "{code}");
            assert_eq!(e.error_code(), "smtp_permanent_reply");
            assert!(!e.breaks_connection());
        }
    }

    #[test]
    fn a_positive_or_out_of_range_code_as_error_is_an_unreadable_reply_and_retried() {
        for code in [250u16, 354, 600, 0] {
            let e = DeliverError::from_reply(Stage::Data, code, "?");
            assert!(e.is_retryable());
            assert_eq!(e.error_code(), "smtp_protocol");
            assert!(e.breaks_connection());
        }
    }

    #[test]
    fn every_io_error_kind_is_retryable_and_breaks_the_connection() {
        use io::ErrorKind::*;
        for kind in [
            ConnectionRefused,
            ConnectionReset,
            ConnectionAborted,
            NotConnected,
            BrokenPipe,
            UnexpectedEof,
            TimedOut,
            AddrNotAvailable,
            HostUnreachable,
            NetworkUnreachable,
            InvalidData,
            Other,
        ] {
            let e = DeliverError::from_io(Stage::Connect, &io::Error::new(kind, "x"));
            assert!(e.is_retryable(), "{kind:?}");
            assert!(e.breaks_connection(), "{kind:?}");
            assert_eq!(e.error_code(), "smtp_io");
        }
    }

    #[test]
    fn timeouts_tls_and_unreadable_replies_are_retryable() {
        let t = DeliverError::Timeout {
            stage: Stage::EndOfData,
            after: Duration::from_secs(30),
        };
        assert!(t.is_retryable() && t.breaks_connection());
        assert_eq!(t.to_string(), "end of data: no answer within 30s");
        let tls = DeliverError::Tls {
            stage: Stage::Starttls,
            message: "invalid peer certificate: UnknownIssuer".into(),
        };
        assert!(tls.is_retryable());
        let p = DeliverError::Protocol {
            stage: Stage::Data,
            message: "incomplete response".into(),
        };
        assert!(p.is_retryable() && p.breaks_connection());
    }

    #[test]
    fn missing_capabilities_and_bad_addresses_are_permanent() {
        for e in [
            DeliverError::StarttlsUnavailable,
            DeliverError::AuthUnavailable {
                offered: "PIPELINING".into(),
            },
            DeliverError::InvalidAddress {
                address: "no-at-sign".into(),
                reason: "missing @".into(),
            },
            DeliverError::Unsupported {
                extension: "SMTPUTF8",
                why: "non-ASCII address",
            },
        ] {
            assert!(!e.is_retryable(), "{e}");
            assert!(DeliverError::CODES.contains(&e.error_code()));
        }
        assert!(DeliverError::StarttlsUnavailable
            .to_string()
            .contains("forbids sending in clear text"));
    }

    #[test]
    fn a_refused_auth_names_the_cause_and_the_settings_to_check() {
        let e =
            DeliverError::from_reply(Stage::Auth, 535, "5.7.8 Authentication credentials invalid");
        let s = e.to_string();
        assert!(
            s.starts_with("AUTH: relay refused with 535 5.7.8 Authentication credentials invalid"),
            "{s}"
        );
        assert!(s.contains("smtp.username"), "{s}");
    }

    #[test]
    fn file_errors_are_retryable() {
        let e = DeliverError::File {
            kind: io::ErrorKind::StorageFull,
            message: "no space left on device".into(),
        };
        assert!(e.is_retryable());
        assert_eq!(e.error_code(), "file_io");
    }
}
