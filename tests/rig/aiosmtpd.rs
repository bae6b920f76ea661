//! An aiosmtpd relay (tests/rig/aiosmtpd_server.py, run with the rig's venv python) for the
//! delivery tests that need STARTTLS, implicit TLS, AUTH or per-recipient replies, and a
//! self-signed certificate made with the `openssl` CLI. Killed on drop.

use crate::rig;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The rig's python (`.cache/rig/python-bin`, written by install.sh).
pub fn python_bin() -> PathBuf {
    let recorded = rig::root().join(".cache/rig/python-bin");
    let p = std::fs::read_to_string(&recorded).unwrap_or_else(|_| {
        panic!(
            "{} missing: run tests/rig/install.sh (make test does)",
            recorded.display()
        )
    });
    PathBuf::from(p.trim())
}

/// A self-signed certificate for `localhost` and `127.0.0.1` (not a CA: it is its own trust
/// anchor when given to the client as `ca_file`).
pub struct TestCert {
    _dir: tempfile::TempDir,
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl TestCert {
    /// Generates one with `openssl req -x509` (P-256, valid two days).
    pub fn generate() -> TestCert {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestCert {
            _dir: dir,
            cert,
            key,
        }
    }
}

/// How the relay is set up.
pub struct Setup<'a> {
    /// `plain`, `starttls` or `tls`.
    pub mode: &'a str,
    /// Server certificate (for `starttls` and `tls`).
    pub cert: Option<&'a TestCert>,
    /// Required AUTH user and password.
    pub auth: Option<(&'a str, &'a str)>,
    /// AUTH mechanisms offered, e.g. `"PLAIN"`.
    pub mechanisms: &'a str,
    /// Announce PIPELINING.
    pub pipelining: bool,
}

/// One message as the relay stored it.
#[derive(Debug)]
pub struct Stored {
    /// DATA content exactly as received (dot-unstuffed).
    pub bytes: Vec<u8>,
    /// MAIL FROM.
    pub mail_from: String,
    /// Accepted RCPT TOs.
    pub rcpt_tos: Vec<String>,
    /// Whether the session had authenticated.
    pub authenticated: bool,
    /// Whether the session was encrypted.
    pub tls: bool,
}

/// A running aiosmtpd relay.
pub struct Aiosmtpd {
    child: Child,
    port: u16,
    store: tempfile::TempDir,
}

impl Aiosmtpd {
    /// Starts the relay on a free port and waits until it listens.
    pub fn start(setup: &Setup<'_>) -> Aiosmtpd {
        let store = tempfile::tempdir().expect("tempdir");
        let port = rig::free_port();
        let log = store.path().join("server.log");
        let mut cmd = Command::new(python_bin());
        cmd.arg(rig::root().join("tests/rig/aiosmtpd_server.py"))
            .args(["--port", &port.to_string(), "--mode", setup.mode])
            .arg("--dir")
            .arg(store.path())
            .args(["--mechanisms", setup.mechanisms]);
        if let Some(c) = setup.cert {
            cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
        }
        if let Some((u, p)) = setup.auth {
            cmd.args(["--user", u, "--password", p]);
        }
        if setup.pipelining {
            cmd.arg("--pipelining");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start aiosmtpd_server.py");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).expect("read");
        assert!(
            line.starts_with("READY"),
            "aiosmtpd did not start: {line:?}; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Aiosmtpd { child, port, store }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every stored message, in arrival order.
    pub fn messages(&self) -> Vec<Stored> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.store.path())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort();
        names.iter().map(|p| read_stored(p)).collect()
    }
}

fn read_stored(eml: &Path) -> Stored {
    let bytes = std::fs::read(eml).expect("eml");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(eml.with_extension("json")).expect("json"))
            .expect("json");
    Stored {
        bytes,
        mail_from: meta["mail_from"].as_str().unwrap_or_default().to_string(),
        rcpt_tos: meta["rcpt_tos"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        authenticated: meta["authenticated"].as_bool().unwrap_or(false),
        tls: meta["tls"].as_bool().unwrap_or(false),
    }
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
