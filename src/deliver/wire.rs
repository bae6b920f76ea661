//! Our own sockets under lettre's SMTP protocol code, and the two things that make them fast.
//!
//! **The 40 ms story** (FACTS.md, measured here): lettre's pooled transport never sets
//! `TCP_NODELAY`, and lettre writes a message's body and its final `\r\n.\r\n` as two writes,
//! each flushed. With Nagle's algorithm on, the small terminator waits until the body is
//! acknowledged, and the relay delays that ACK (~40 ms on Linux) because it is waiting for the
//! rest of the message: every message costs one delayed-ACK timeout, ~23 msg/s per connection.
//! So every pooled socket is built here with `TCP_NODELAY` (and the setting is read back from the
//! kernel and counted), and [`Wire`] can *cork* one message: the body write and its flush are
//! held back and leave together with the terminator in one write, so the relay gets the whole
//! message in one segment train and answers at once. [`WireStats`] exposes both facts for the
//! regression test.
//!
//! `Wire` sits directly on the TCP stream, below TLS: lettre's STARTTLS wraps it, and for
//! implicit TLS we wrap it ourselves with tokio-rustls ([`TlsWire`]).

use crate::config::SmtpConfig;
use crate::deliver::error::DeliverError;
use lettre::transport::smtp::client::AsyncTokioStream;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Counters over every connection the pool has opened (for the regression test and debugging).
#[derive(Debug, Default)]
pub(crate) struct WireTotals {
    connections: AtomicU64,
    connections_nodelay: AtomicU64,
    messages: AtomicU64,
    messages_one_write: AtomicU64,
    writes: AtomicU64,
}

/// Socket-level facts over every connection the pool has opened ([`Outbox::wire_stats`](crate::deliver::Outbox::wire_stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WireStats {
    /// TCP connections opened.
    pub connections: u64,
    /// Of those, how many had `TCP_NODELAY` set, as read back from the kernel.
    pub connections_nodelay: u64,
    /// Messages whose body was written (DATA content).
    pub messages: u64,
    /// Of those, how many left as one socket write of body and terminator together.
    pub messages_one_write: u64,
    /// Socket writes of any kind (commands, messages): with PIPELINING a transaction costs
    /// two, its envelope group and its message; without, four.
    pub writes: u64,
}

impl WireTotals {
    pub(crate) fn snapshot(&self) -> WireStats {
        WireStats {
            connections: self.connections.load(Ordering::Relaxed),
            connections_nodelay: self.connections_nodelay.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            messages_one_write: self.messages_one_write.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }
}

/// The session's handle on its `Wire`, which lettre owns once the connection is built.
#[derive(Debug)]
pub(crate) struct WireCtl {
    /// Flushes still to hold back (1 while a message is corked).
    skip_flushes: AtomicU32,
    /// The next write is a whole message with its terminator (see [`WireCtl::expect_message`]).
    message_next: AtomicBool,
    totals: Arc<WireTotals>,
}

impl WireCtl {
    /// Holds back the next flush: the message body stays buffered until the terminator joins it.
    pub(crate) fn cork_message(&self) {
        self.skip_flushes.store(1, Ordering::Relaxed);
        self.totals.messages.fetch_add(1, Ordering::Relaxed);
    }

    /// The next write carries a whole message and its terminator in one buffer (the session's
    /// own dot-stuffed DATA content): it counts as a message, and as one write if the kernel
    /// took it whole.
    pub(crate) fn expect_message(&self) {
        self.message_next.store(true, Ordering::Relaxed);
        self.totals.messages.fetch_add(1, Ordering::Relaxed);
    }

    /// Ends corking whatever happened (the next flush writes what is buffered).
    pub(crate) fn uncork(&self) {
        self.skip_flushes.store(0, Ordering::Relaxed);
    }
}

/// A byte stream that writes straight through, except while a message is corked: then writes
/// are buffered and one flush is skipped, so body and terminator go out in one write.
pub(crate) struct Wire<S> {
    inner: S,
    buf: Vec<u8>,
    sent: usize,
    /// Inner writes made while draining the current buffer.
    writes: u32,
    ctl: Arc<WireCtl>,
}

impl<S> Wire<S> {
    pub(crate) fn new(inner: S, totals: Arc<WireTotals>) -> (Wire<S>, Arc<WireCtl>) {
        let ctl = Arc::new(WireCtl {
            skip_flushes: AtomicU32::new(0),
            message_next: AtomicBool::new(false),
            totals,
        });
        (
            Wire {
                inner,
                buf: Vec::new(),
                sent: 0,
                writes: 0,
                ctl: ctl.clone(),
            },
            ctl,
        )
    }
}

impl<S: AsyncWrite + Unpin> Wire<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
            self.writes += 1;
            self.ctl.totals.writes.fetch_add(1, Ordering::Relaxed);
        }
        if self.writes == 1 {
            self.ctl
                .totals
                .messages_one_write
                .fetch_add(1, Ordering::Relaxed);
        }
        self.buf.clear();
        self.sent = 0;
        self.writes = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Wire<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Wire<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.ctl.skip_flushes.load(Ordering::Relaxed) > 0 || !self.buf.is_empty() {
            self.buf.extend_from_slice(data);
            return Poll::Ready(Ok(data.len()));
        }
        let written = ready!(Pin::new(&mut self.inner).poll_write(cx, data))?;
        let totals = &self.ctl.totals;
        if written > 0 {
            totals.writes.fetch_add(1, Ordering::Relaxed);
        }
        if self.ctl.message_next.swap(false, Ordering::Relaxed) && written == data.len() {
            totals.messages_one_write.fetch_add(1, Ordering::Relaxed);
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let skip = this.ctl.skip_flushes.load(Ordering::Relaxed);
        if skip > 0 {
            this.ctl.skip_flushes.store(skip - 1, Ordering::Relaxed);
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S> fmt::Debug for Wire<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wire")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl AsyncTokioStream for Wire<TcpStream> {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}

/// Implicit TLS (`tls = "tls"`) over our own socket: lettre only needs `AsyncTokioStream`.
pub(crate) struct TlsWire(pub(crate) tokio_rustls::client::TlsStream<Wire<TcpStream>>);

impl fmt::Debug for TlsWire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsWire")
    }
}

impl AsyncRead for TlsWire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsWire {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsWire {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.inner.peer_addr()
    }
}

/// Connects to the first address of `host:port` that answers, with `TCP_NODELAY` set and read
/// back (counted in [`WireStats`]).
pub(crate) async fn connect_tcp(
    host: &str,
    port: u16,
    totals: &Arc<WireTotals>,
) -> Result<TcpStream, io::Error> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                totals.connections.fetch_add(1, Ordering::Relaxed);
                if tcp.nodelay()? {
                    totals.connections_nodelay.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        )
    }))
}

/// The trust anchors for the relay: the Mozilla roots plus every certificate of `ca_file`.
fn ca_certs(
    cfg: &SmtpConfig,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, DeliverError> {
    let Some(path) = &cfg.ca_file else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(path)
        .map_err(|e| DeliverError::Config(format!("smtp.ca_file {}: {e}", path.display())))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DeliverError::Config(format!("smtp.ca_file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(DeliverError::Config(format!(
            "smtp.ca_file {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// lettre's TLS parameters for STARTTLS.
pub(crate) fn starttls_params(
    cfg: &SmtpConfig,
) -> Result<lettre::transport::smtp::client::TlsParameters, DeliverError> {
    use lettre::transport::smtp::client::{Certificate, TlsParameters};
    let mut b = TlsParameters::builder(cfg.host.clone());
    if let Some(path) = &cfg.ca_file {
        ca_certs(cfg)?;
        let pem = std::fs::read(path)
            .map_err(|e| DeliverError::Config(format!("smtp.ca_file {}: {e}", path.display())))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| DeliverError::Config(format!("smtp.ca_file {}: {e}", path.display())))?;
        b = b.add_root_certificate(cert);
    }
    if !cfg.tls_verify {
        b = b
            .dangerous_accept_invalid_certs(true)
            .dangerous_accept_invalid_hostnames(true);
    }
    b.build_rustls()
        .map_err(|e| DeliverError::Config(format!("TLS parameters: {e}")))
}

/// Our rustls client configuration for implicit TLS, with the same trust as STARTTLS.
pub(crate) fn implicit_tls_connector(
    cfg: &SmtpConfig,
) -> Result<
    (
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    ),
    DeliverError,
> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DeliverError::Config(format!("TLS: {e}")))?;
    let config = if cfg.tls_verify {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for c in ca_certs(cfg)? {
            roots
                .add(c)
                .map_err(|e| DeliverError::Config(format!("smtp.ca_file: {e}")))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    };
    let name = rustls::pki_types::ServerName::try_from(cfg.host.clone())
        .map_err(|e| DeliverError::Config(format!("smtp.host {:?} as TLS name: {e}", cfg.host)))?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

/// `tls_verify = false`: accept any certificate (signatures are still checked).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Records every write call it receives.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        flushes: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_corked_message_leaves_as_one_write_of_body_and_terminator() {
        let totals = Arc::new(WireTotals::default());
        let (mut w, ctl) = Wire::new(Recorder::default(), totals.clone());
        // What lettre's `message()` does: write body, flush, write terminator, flush.
        ctl.cork_message();
        w.write_all(b"Subject: x\r\n\r\nbody\r\n").await.unwrap();
        w.flush().await.unwrap();
        assert!(
            w.inner.writes.is_empty(),
            "the body must wait for the terminator"
        );
        w.write_all(b"\r\n.\r\n").await.unwrap();
        w.flush().await.unwrap();
        ctl.uncork();
        assert_eq!(
            w.inner.writes,
            vec![b"Subject: x\r\n\r\nbody\r\n\r\n.\r\n".to_vec()]
        );
        let s = totals.snapshot();
        assert_eq!((s.messages, s.messages_one_write), (1, 1));
    }

    #[tokio::test]
    async fn commands_outside_a_message_are_written_straight_through() {
        let totals = Arc::new(WireTotals::default());
        let (mut w, _ctl) = Wire::new(Recorder::default(), totals);
        w.write_all(b"MAIL FROM:<a@b>\r\n").await.unwrap();
        assert_eq!(w.inner.writes.len(), 1, "no buffering without cork");
        w.flush().await.unwrap();
        w.write_all(b"RCPT TO:<c@d>\r\n").await.unwrap();
        w.flush().await.unwrap();
        assert_eq!(w.inner.writes.len(), 2);
        assert_eq!(w.inner.flushes, 2);
    }

    #[tokio::test]
    async fn pooled_sockets_have_nodelay_set_as_read_back_from_the_kernel() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let totals = Arc::new(WireTotals::default());
        let tcp = connect_tcp("127.0.0.1", port, &totals).await.unwrap();
        assert!(tcp.nodelay().unwrap());
        let s = totals.snapshot();
        assert_eq!((s.connections, s.connections_nodelay), (1, 1));
    }
}
