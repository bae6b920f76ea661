//! One SMTP connection of the pool: how it is built (our nodelay socket, implicit TLS or
//! STARTTLS, AUTH) and one transaction with an outcome per recipient.

use crate::config::{SmtpConfig, TlsMode};
use crate::deliver::error::{DeliverError, Stage};
use crate::deliver::pool::Job;
use crate::deliver::wire::{self, TlsWire, Wire, WireCtl, WireTotals};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::Address;
use prometheus::IntGauge;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout, Instant};

/// AUTH mechanisms we offer, in order of preference.
const MECHANISMS: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

/// Everything needed to open a connection, prepared once at start.
pub(crate) struct Connector {
    host: String,
    port: u16,
    tls: TlsMode,
    starttls: Option<TlsParameters>,
    implicit: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    client_id: ClientId,
    pipelining: bool,
    credentials: Option<Credentials>,
    connect_timeout: Duration,
    command_timeout: Duration,
    totals: Arc<WireTotals>,
}

impl Connector {
    /// Checks and prepares the TLS and AUTH settings; fails on unusable configuration.
    pub(crate) fn new(
        cfg: &SmtpConfig,
        totals: Arc<WireTotals>,
    ) -> Result<Connector, DeliverError> {
        let credentials = match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.expose().to_string())),
            (Some(_), None) => {
                return Err(DeliverError::Config(
                    "smtp.username is set but no password was resolved".into(),
                ))
            }
            _ => None,
        };
        if credentials.is_some() && cfg.tls == TlsMode::None {
            return Err(DeliverError::Config(
                "AUTH needs smtp.tls = \"starttls\" or \"tls\": a password is never sent in clear text"
                    .into(),
            ));
        }
        let (starttls, implicit) = match cfg.tls {
            TlsMode::None => (None, None),
            TlsMode::Starttls => (Some(wire::starttls_params(cfg)?), None),
            TlsMode::Tls => (None, Some(wire::implicit_tls_connector(cfg)?)),
        };
        Ok(Connector {
            host: cfg.host.clone(),
            port: cfg.port,
            tls: cfg.tls,
            starttls,
            implicit,
            client_id: cfg
                .helo_name
                .clone()
                .map(ClientId::Domain)
                .unwrap_or_default(),
            pipelining: cfg.pipelining,
            credentials,
            connect_timeout: cfg.connect_timeout,
            command_timeout: cfg.command_timeout,
            totals,
        })
    }

    /// Opens a ready-to-send connection: TCP (nodelay), TLS, greeting, EHLO, STARTTLS, AUTH, all
    /// within `connect_timeout`.
    pub(crate) async fn connect(&self, gauge: &IntGauge) -> Result<Session, DeliverError> {
        let (conn, ctl, pipelining) = match timeout(self.connect_timeout, self.open()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(DeliverError::Timeout {
                    stage: Stage::Connect,
                    after: self.connect_timeout,
                })
            }
        };
        gauge.inc();
        Ok(Session {
            conn,
            ctl,
            pipelining,
            messages: 0,
            last_used: Instant::now(),
            command_timeout: self.command_timeout,
            gauge: gauge.clone(),
        })
    }

    async fn open(&self) -> Result<(AsyncSmtpConnection, Arc<WireCtl>, bool), DeliverError> {
        let tcp = wire::connect_tcp(&self.host, self.port, &self.totals)
            .await
            .map_err(|e| DeliverError::from_io(Stage::Connect, &e))?;
        let (wire, ctl) = Wire::new(tcp, self.totals.clone());
        let stream: Box<dyn AsyncTokioStream> =
            match &self.implicit {
                Some((connector, name)) => {
                    let tls = connector.connect(name.clone(), wire).await.map_err(|e| {
                        DeliverError::Tls {
                            stage: Stage::TlsHandshake,
                            message: e.to_string(),
                        }
                    })?;
                    Box::new(TlsWire(tls))
                }
                None => Box::new(wire),
            };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.client_id)
            .await
            .map_err(|e| DeliverError::from_lettre(Stage::Hello, &e))?;
        if self.tls == TlsMode::Starttls {
            if !conn.server_info().supports_feature(Extension::StartTls) {
                // Never fall back to clear text: a relay that stopped offering STARTTLS may be an
                // attacker stripping it.
                let _ = timeout(self.command_timeout, conn.quit()).await;
                return Err(DeliverError::StarttlsUnavailable);
            }
            if let Some(params) = &self.starttls {
                timed(
                    self.command_timeout,
                    Stage::Starttls,
                    conn.starttls(params.clone(), &self.client_id),
                )
                .await?;
            }
        }
        // lettre keeps from the EHLO reply only the extensions it uses itself, and PIPELINING
        // is not one of them: ask once more (RFC 5321 allows EHLO at any time; it resets the
        // session like RSET), after STARTTLS and before AUTH, which a new EHLO must not follow.
        let pipelining = self.pipelining && {
            let ehlo = timed(
                self.command_timeout,
                Stage::Hello,
                conn.command(Ehlo::new(self.client_id.clone())),
            )
            .await;
            match ehlo {
                Ok(reply) => offers_pipelining(&reply),
                Err(e) if e.breaks_connection() => return Err(e),
                Err(_) => false,
            }
        };
        if let Some(creds) = &self.credentials {
            if conn.server_info().get_auth_mechanism(&MECHANISMS).is_none() {
                let offered = conn.server_info().to_string();
                let _ = timeout(self.command_timeout, conn.quit()).await;
                return Err(DeliverError::AuthUnavailable { offered });
            }
            let authed = timed(
                self.command_timeout,
                Stage::Auth,
                conn.auth(&MECHANISMS, creds),
            )
            .await;
            if let Err(e) = authed {
                if !e.breaks_connection() {
                    let _ = timeout(self.command_timeout, conn.quit()).await;
                }
                return Err(e);
            }
        }
        Ok((conn, ctl, pipelining))
    }
}

/// A message as DATA content (RFC 5321 4.5.2): a "." is doubled at the start of every line
/// (after each CRLF, and at the very start), then CRLF "." CRLF ends it. Lines are those of
/// lettre's codec, which this replaces: only CRLF ends one.
struct DataContent<'a>(&'a str);

impl Display for DataContent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0;
        let b = text.as_bytes();
        if text.starts_with('.') {
            f.write_str(".")?;
        }
        // Copy whole stretches; stop only where a line that follows a CRLF begins with ".".
        let mut from = 0;
        for (i, _) in text.match_indices('\n') {
            if i > 0 && b[i - 1] == b'\r' && b.get(i + 1) == Some(&b'.') {
                f.write_str(&text[from..=i])?;
                f.write_str(".")?;
                from = i + 1;
            }
        }
        f.write_str(&text[from..])?;
        f.write_str("\r\n.\r\n")
    }
}

/// Whether an EHLO reply lists the PIPELINING keyword (any case; the first line is the
/// relay's name, each further line one extension).
fn offers_pipelining(reply: &Response) -> bool {
    reply.message().skip(1).any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
    })
}

/// A connection of the pool.
pub(crate) struct Session {
    conn: AsyncSmtpConnection,
    ctl: Arc<WireCtl>,
    /// The relay offered PIPELINING and it is not switched off.
    pipelining: bool,
    /// Transactions on this connection (for `max_messages_per_connection`).
    pub(crate) messages: usize,
    last_used: Instant,
    command_timeout: Duration,
    gauge: IntGauge,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Session {
    /// How long the connection has been unused.
    pub(crate) fn idle_for(&self) -> Duration {
        self.last_used.elapsed()
    }

    /// NOOP: is the connection still usable after sitting idle?
    pub(crate) async fn alive(&mut self) -> bool {
        matches!(
            timeout(self.command_timeout, self.conn.test_connected()).await,
            Ok(true)
        )
    }

    /// QUIT politely (bounded by the command timeout) and close.
    pub(crate) async fn quit(mut self) {
        let _ = timeout(self.command_timeout, self.conn.quit()).await;
    }

    async fn cmd<C: Display>(&mut self, c: C, stage: Stage) -> Result<(), DeliverError> {
        timed(self.command_timeout, stage, self.conn.command(c))
            .await
            .map(drop)
    }

    /// After a refused MAIL/RCPT/DATA the transaction is reset; if even that fails the
    /// connection is given up. Returns whether the connection is broken.
    async fn reset(&mut self) -> bool {
        self.cmd(Rset, Stage::Reset).await.is_err()
    }

    /// One transaction for the job's pending recipients: MAIL FROM, one RCPT TO each, DATA and
    /// the message bytes exactly as given. Recipients move to `accepted` only on the final 2xx;
    /// each refused RCPT is classified on its own reply. Returns whether the connection broke
    /// (then the caller drops it).
    pub(crate) async fn transact(&mut self, job: &mut Job) -> bool {
        self.messages += 1;
        self.last_used = Instant::now();
        let broken = self.transact_inner(job).await;
        self.last_used = Instant::now();
        broken
    }

    async fn transact_inner(&mut self, job: &mut Job) -> bool {
        let Some((from, rcpts)) = job.envelope() else {
            return false;
        };
        let ascii = |a: &Address| AsRef::<str>::as_ref(a).is_ascii();
        let non_ascii_address =
            from.as_ref().is_some_and(|a| !ascii(a)) || rcpts.iter().any(|(_, a)| !ascii(a));
        let bytes = job.out.bytes.clone();
        // The extensions this message needs, checked against what the relay announced.
        let needs = [
            (
                non_ascii_address,
                Extension::SmtpUtfEight,
                MailParameter::SmtpUtfEight,
                "SMTPUTF8",
                "an envelope address is not ASCII",
            ),
            (
                !bytes.is_ascii(),
                Extension::EightBitMime,
                MailParameter::Body(MailBodyParameter::EightBitMime),
                "8BITMIME",
                "the message contains 8-bit bytes",
            ),
        ];
        let mut params = Vec::new();
        for (needed, extension, param, name, why) in needs {
            if !needed {
                continue;
            }
            if !self.conn.server_info().supports_feature(extension) {
                job.fail_all_pending(&DeliverError::Unsupported {
                    extension: name,
                    why,
                });
                return false;
            }
            params.push(param);
        }

        let mut in_tx: Vec<String> = Vec::with_capacity(rcpts.len());
        let ended = if self.pipelining {
            self.envelope_pipelined(job, Mail::new(from, params), rcpts, &mut in_tx)
                .await
        } else {
            self.envelope_in_turn(job, Mail::new(from, params), rcpts, &mut in_tx)
                .await
        };
        if let Some(broken) = ended {
            return broken;
        }
        // lettre always appends CRLF "." CRLF; a message that ends with its own CRLF would get
        // an extra empty line, so that CRLF is left to lettre and the relay stores the bytes
        // exactly as given. (A message without a final CRLF gets one: SMTP requires it.)
        let body = bytes.strip_suffix(b"\r\n").unwrap_or(&bytes);
        let sent = match std::str::from_utf8(body) {
            // The usual case (our messages are ASCII): dot-stuffed here a line at a time, and
            // written with the terminator as one buffer by `command`, which writes its argument
            // as it is and reads the reply. lettre's `message` does the same transparency a
            // byte at a time: 6% of the service's CPU in the bench-e2e profile.
            Ok(text) => {
                self.ctl.expect_message();
                timed(
                    self.command_timeout,
                    Stage::EndOfData,
                    self.conn.command(DataContent(text)),
                )
                .await
            }
            Err(_) => {
                // Body and terminator leave in one write (see `wire`): no delayed-ACK stall.
                self.ctl.cork_message();
                let sent = timed(
                    self.command_timeout,
                    Stage::EndOfData,
                    self.conn.message(body),
                )
                .await;
                self.ctl.uncork();
                sent
            }
        };
        match sent {
            Ok(_) => {
                job.accept(&in_tx);
                false
            }
            Err(e) => {
                // After the terminator the transaction is over whatever the reply; without a
                // readable reply its fate is unknown and the retry may duplicate (at least once).
                job.fail_these(&in_tx, &e);
                e.breaks_connection()
            }
        }
    }
}

impl Session {
    async fn reply(&mut self, stage: Stage) -> Result<(), DeliverError> {
        timed(self.command_timeout, stage, self.conn.read_response())
            .await
            .map(drop)
    }

    /// MAIL, then each RCPT, then DATA, each waiting for its reply. `None` when DATA was
    /// accepted for the recipients in `in_tx`; else the transaction is over (each recipient
    /// has its outcome) and `Some(broken)`.
    async fn envelope_in_turn(
        &mut self,
        job: &mut Job,
        mail: Mail,
        rcpts: Vec<(String, Address)>,
        in_tx: &mut Vec<String>,
    ) -> Option<bool> {
        if let Err(e) = self.cmd(mail, Stage::MailFrom).await {
            job.fail_all_pending(&e);
            return Some(e.breaks_connection() || self.reset().await);
        }
        for (raw, addr) in rcpts {
            match self.cmd(Rcpt::new(addr, vec![]), Stage::RcptTo).await {
                Ok(()) => in_tx.push(raw),
                Err(e) if e.breaks_connection() => {
                    job.fail_all_pending(&e);
                    return Some(true);
                }
                Err(e) => job.fail_one(&raw, &e),
            }
        }
        if in_tx.is_empty() {
            return Some(self.reset().await);
        }
        if let Err(e) = self.cmd(Data, Stage::Data).await {
            job.fail_these(in_tx, &e);
            return Some(e.breaks_connection() || self.reset().await);
        }
        None
    }

    /// RFC 2920: MAIL, every RCPT and DATA leave in one write, then their replies are read in
    /// order; the outcomes are those of [`Session::envelope_in_turn`]. When MAIL is refused the
    /// relay refuses what follows too (503), and that refusal is its reason for every
    /// recipient.
    async fn envelope_pipelined(
        &mut self,
        job: &mut Job,
        mail: Mail,
        rcpts: Vec<(String, Address)>,
        in_tx: &mut Vec<String>,
    ) -> Option<bool> {
        use std::fmt::Write as _;
        let mut group = mail.to_string();
        for (_, addr) in &rcpts {
            let _ = write!(group, "{}", Rcpt::new(addr.clone(), vec![]));
        }
        let _ = write!(group, "{Data}");
        let mail = self.cmd(group, Stage::MailFrom).await;
        if let Err(e) = &mail {
            if e.breaks_connection() {
                job.fail_all_pending(e);
                return Some(true);
            }
        }
        for (raw, _) in rcpts {
            match self.reply(Stage::RcptTo).await {
                Ok(()) => in_tx.push(raw),
                Err(e) if e.breaks_connection() => {
                    job.fail_all_pending(&e);
                    return Some(true);
                }
                Err(e) if mail.is_ok() => job.fail_one(&raw, &e),
                Err(_) => {}
            }
        }
        let data = self.reply(Stage::Data).await;
        match (mail, data) {
            (_, Err(e)) if e.breaks_connection() => {
                job.fail_all_pending(&e);
                Some(true)
            }
            (Err(e), data) => {
                job.fail_all_pending(&e);
                Some(if data.is_ok() {
                    self.end_empty_data().await
                } else {
                    self.reset().await
                })
            }
            (Ok(()), Err(e)) => {
                // Recipients refused one by one already have their outcome.
                job.fail_these(in_tx, &e);
                Some(self.reset().await)
            }
            (Ok(()), Ok(())) if in_tx.is_empty() => Some(self.end_empty_data().await),
            (Ok(()), Ok(())) => None,
        }
    }

    /// A relay that answered DATA with 354 although no recipient was accepted (it should
    /// answer 503 or 554) now waits for a message: give it an empty one, which it refuses for
    /// want of recipients. Returns whether the connection is broken.
    async fn end_empty_data(&mut self) -> bool {
        match timed(
            self.command_timeout,
            Stage::EndOfData,
            self.conn.message(b""),
        )
        .await
        {
            Ok(_) => false,
            Err(e) => e.breaks_connection(),
        }
    }
}

/// Runs one lettre call within `limit`, classifying its error at `stage`.
async fn timed<T>(
    limit: Duration,
    stage: Stage,
    call: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, DeliverError> {
    match timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(DeliverError::from_lettre(stage, &e)),
        Err(_) => Err(DeliverError::Timeout {
            stage,
            after: limit,
        }),
    }
}

/// Parses an envelope address as lettre needs it.
pub(crate) fn parse_address(raw: &str) -> Result<Address, DeliverError> {
    raw.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .parse::<Address>()
        .map_err(|e| DeliverError::InvalidAddress {
            address: raw.to_string(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::transport::smtp::response::{Category, Code, Detail, Severity};

    fn ehlo_reply(lines: &[&str]) -> Response {
        Response::new(
            Code::new(
                Severity::PositiveCompletion,
                Category::MailSystem,
                Detail::Zero,
            ),
            lines.iter().map(|l| l.to_string()).collect(),
        )
    }

    /// lettre's transparency codec (`ClientCodec`, private there), byte by byte, plus the
    /// terminator `message` appends: the reference for [`DataContent`].
    fn lettre_data(body: &[u8]) -> Vec<u8> {
        #[derive(Clone, Copy)]
        enum St {
            Middle,
            Cr,
            LineStart,
        }
        let mut st = St::LineStart;
        let mut out = Vec::new();
        for &b in body {
            out.push(b);
            st = match (b, st) {
                (b'\r', _) => St::Cr,
                (b'\n', St::Cr) => St::LineStart,
                (b'.', St::LineStart) => {
                    out.push(b'.');
                    St::Middle
                }
                (_, St::Cr | St::LineStart) => St::Middle,
                (_, St::Middle) => St::Middle,
            };
        }
        out.extend_from_slice(b"\r\n.\r\n");
        out
    }

    #[test]
    fn data_content_stuffs_dots_as_lettre_does() {
        for body in [
            "",
            ".",
            "..",
            ".a\r\n.b\r\n\r\n.\r\nc.d",
            "a\n.b\r.c\r\r\n.d",
            "line\r\n",
            "\r\n.",
        ] {
            assert_eq!(
                DataContent(body).to_string().into_bytes(),
                lettre_data(body.as_bytes()),
                "{body:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn data_content_equals_lettre_on_any_text(body in "[.\r\na ]{0,64}") {
            proptest::prop_assert_eq!(
                DataContent(&body).to_string().into_bytes(),
                lettre_data(body.as_bytes())
            );
        }
    }

    #[test]
    fn pipelining_is_read_from_the_extension_lines_of_the_ehlo_reply() {
        assert!(offers_pipelining(&ehlo_reply(&[
            "relay.example.com",
            "SIZE 10240000",
            "PIPELINING",
            "8BITMIME",
        ])));
        assert!(offers_pipelining(&ehlo_reply(&["relay", "pipelining"])));
        // Only an extension keyword counts, not the relay's name or a word inside a line.
        assert!(!offers_pipelining(&ehlo_reply(&["PIPELINING", "8BITMIME"])));
        assert!(!offers_pipelining(&ehlo_reply(&[
            "relay",
            "X-NO PIPELINING"
        ])));
        assert!(!offers_pipelining(&ehlo_reply(&["relay"])));
    }
}
