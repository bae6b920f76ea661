//! Runs the real `mailgate-notify` binary as a child process (for tests that kill it), with its
//! log captured to a file.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running service process; SIGKILLed on drop if still alive.
pub struct Service {
    child: Child,
    /// Its log file.
    pub log: PathBuf,
}

impl Service {
    /// Starts `mailgate-notify run --config <config>`; the log goes to `log`.
    pub fn start(config: &Path, log: &Path) -> Service {
        Service::start_with(config, log, &[])
    }

    /// Like [`Service::start`], with extra `run` arguments (e.g. the hidden `--clock-start`).
    pub fn start_with(config: &Path, log: &Path, extra: &[&str]) -> Service {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log");
        let err = out.try_clone().expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_mailgate-notify"))
            .args(["run", "--config"])
            .arg(config)
            .args(extra)
            .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start mailgate-notify");
        Service {
            child,
            log: log.to_path_buf(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no drain, no commit.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: the service drains, commits and exits.
    pub fn sigterm(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
