//! One SMTP connection of the pool: how it is built (our nodelay socket, implicit TLS or
//! STARTTLS, AUTH) and one transaction with an outcome per recipient.

use crate::config::{SmtpConfig, TlsMode};
use crate::deliver::error::{DeliverError, Stage};
use crate::deliver::pool::Job;
use crate::deliver::wire::{self, TlsWire, Wire, WireCtl, WireTotals};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
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
            credentials,
            connect_timeout: cfg.connect_timeout,
            command_timeout: cfg.command_timeout,
            totals,
        })
    }

    /// Opens a ready-to-send connection: TCP (nodelay), TLS, greeting, EHLO, STARTTLS, AUTH, all
    /// within `connect_timeout`.
    pub(crate) async fn connect(&self, gauge: &IntGauge) -> Result<Session, DeliverError> {
        let (conn, ctl) = match timeout(self.connect_timeout, self.open()).await {
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
            messages: 0,
            last_used: Instant::now(),
            command_timeout: self.command_timeout,
            gauge: gauge.clone(),
        })
    }

    async fn open(&self) -> Result<(AsyncSmtpConnection, Arc<WireCtl>), DeliverError> {
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
        Ok((conn, ctl))
    }
}

/// A connection of the pool.
pub(crate) struct Session {
    conn: AsyncSmtpConnection,
    ctl: Arc<WireCtl>,
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

        if let Err(e) = self.cmd(Mail::new(from, params), Stage::MailFrom).await {
            job.fail_all_pending(&e);
            return e.breaks_connection() || self.reset().await;
        }
        let mut in_tx: Vec<String> = Vec::with_capacity(rcpts.len());
        for (raw, addr) in rcpts {
            match self.cmd(Rcpt::new(addr, vec![]), Stage::RcptTo).await {
                Ok(()) => in_tx.push(raw),
                Err(e) if e.breaks_connection() => {
                    job.fail_all_pending(&e);
                    return true;
                }
                Err(e) => job.fail_one(&raw, &e),
            }
        }
        if in_tx.is_empty() {
            return self.reset().await;
        }
        if let Err(e) = self.cmd(Data, Stage::Data).await {
            job.fail_these(&in_tx, &e);
            return e.breaks_connection() || self.reset().await;
        }
        // lettre always appends CRLF "." CRLF; a message that ends with its own CRLF would get
        // an extra empty line, so that CRLF is left to lettre and the relay stores the bytes
        // exactly as given. (A message without a final CRLF gets one: SMTP requires it.)
        let body = bytes.strip_suffix(b"\r\n").unwrap_or(&bytes);
        // Body and terminator leave in one write (see `wire`): no delayed-ACK stall.
        self.ctl.cork_message();
        let sent = timed(
            self.command_timeout,
            Stage::EndOfData,
            self.conn.message(body),
        )
        .await;
        self.ctl.uncork();
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
