//! The `mailgate-notify` command line.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use mailgate_notify::config::{Config, ConfigError, NotifyGroup};
use mailgate_notify::event::EventKind;
use mailgate_notify::produce::{self, OutputFormat, ProduceOptions};
use mailgate_notify::render::{self, preview};
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

// Why jemalloc: see Cargo.toml (glibc malloc/free were ~30% of the service's CPU under load).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Email notifications of a secure mail gateway: application errors, bounces and rule triggers,
/// from Kafka to SMTP.
#[derive(Parser)]
#[command(name = "mailgate-notify", version, about, long_about = None)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Application,
    Bounce,
    ScanVerdict,
}

impl From<KindArg> for EventKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Application => EventKind::Application,
            KindArg::Bounce => EventKind::Bounce,
            KindArg::ScanVerdict => EventKind::ScanVerdict,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum GroupArg {
    General,
    Sender,
    Recipients,
    Additional,
}

impl From<GroupArg> for NotifyGroup {
    fn from(g: GroupArg) -> Self {
        match g {
            GroupArg::General => NotifyGroup::General,
            GroupArg::Sender => NotifyGroup::Sender,
            GroupArg::Recipients => NotifyGroup::Recipients,
            GroupArg::Additional => NotifyGroup::Additional,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: consume the gateway's topics and send notifications.
    Run {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Test hook, hidden: the service clock starts at this instant (RFC 3339) instead of
        /// the system time, so rig tests can put a midnight where they need it.
        #[arg(long, hide = true, value_parser = parse_instant)]
        clock_start: Option<chrono::DateTime<chrono::Utc>>,
        /// Test hook, hidden: simulated seconds per real second for `--clock-start`.
        #[arg(long, hide = true, default_value_t = 1.0, requires = "clock_start")]
        clock_speed: f64,
    },
    /// Run the embedded demo: an in-process broker, a simulated day of gateway activity, mail
    /// written to ./outbox/.
    Demo {
        /// Simulated seconds per real second (3600: one simulated hour per second).
        #[arg(long, default_value_t = 3600.0)]
        speed: f64,
        /// Simulated span from 08:00 (26h: one midnight digest falls inside).
        #[arg(long, default_value = "26h", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Directory for the .eml files (its old .eml files are removed first).
        #[arg(long, default_value = "outbox")]
        outbox: PathBuf,
        /// A real broker (`host:port,…`) instead of the in-process one; fresh topics per run.
        #[arg(long)]
        brokers: Option<String>,
        /// A real SMTP relay (`host:port`) instead of the outbox directory.
        #[arg(long)]
        smtp: Option<String>,
    },
    /// Load and validate a config; print `ok` or every problem with its path, exit 2 on problems.
    CheckConfig {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the notifications an event would produce (operator preview).
    Render {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Event file (JSON): a scan verdict, a bounce or an application event.
        #[arg(long)]
        event: PathBuf,
        /// For a scan verdict: only this recipient group (default: all four).
        #[arg(long, value_enum)]
        group: Option<GroupArg>,
        /// Render in this language instead of the configured one (en, ru, de…).
        #[arg(long)]
        lang: Option<String>,
        /// For an application event: the daily digest instead of the change notification.
        #[arg(long)]
        digest: bool,
    },
    /// Publish JSON events (one per line) to a topic in the chosen framing, keyed per contract.
    Produce {
        /// Bootstrap brokers, `host:port,…`.
        #[arg(long)]
        brokers: String,
        /// Destination topic.
        #[arg(long)]
        topic: String,
        /// Framing of the published records.
        #[arg(long, value_enum, default_value = "json")]
        format: OutputFormat,
        /// Input file (JSON lines); standard input when absent.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Event kind of every line; inferred from the fields when absent.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        /// Schema registry URL (needed for `--format confluent`).
        #[arg(long)]
        registry: Option<String>,
    },
    /// Encode one JSON event in a framing and write the bytes (used to regenerate fixtures).
    Encode {
        /// Framing.
        #[arg(long, value_enum)]
        format: OutputFormat,
        /// Input file (one JSON event).
        #[arg(long)]
        file: PathBuf,
        /// Output file; standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Event kind; inferred when absent.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
}

fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    // Colour codes only on a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own progress and summary; its service logs stay at warnings unless
    // RUST_LOG asks for more.
    // librdkafka's own warnings are left out: the pass-through consumer properties make every
    // producer warn, and the in-process broker's clients complain when it stops at the end.
    let default_level = match &cli.command {
        Command::Demo { brokers: None, .. } => "warn,librdkafka=off,rdkafka=off",
        Command::Demo { .. } => "warn,librdkafka=error",
        _ => "info",
    };
    init_logging(cli.log_format, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::CheckConfig { config } => Ok(check_config(&config)),
        Command::Run {
            config,
            clock_start,
            clock_speed,
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    for p in &e.problems {
                        eprintln!("{p}");
                    }
                    return Ok(ExitCode::from(2));
                }
            };
            let mut opts = mailgate_notify::app::Options::default();
            if let Some(start) = clock_start {
                if !(clock_speed.is_finite() && clock_speed > 0.0) {
                    eprintln!("--clock-speed must be positive");
                    return Ok(ExitCode::from(2));
                }
                // Loud on purpose: a production instance must never run on a shifted clock.
                tracing::warn!(%start, speed = clock_speed, "clock overridden (test hook)");
                opts.clock = mailgate_notify::app::clock::ScaledClock::new(start, clock_speed);
            }
            mailgate_notify::app::run_with(config, opts, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            speed,
            duration,
            outbox,
            brokers,
            smtp,
        } => {
            if !(speed.is_finite() && speed >= 1.0) {
                eprintln!("--speed must be at least 1");
                return Ok(ExitCode::from(2));
            }
            let opts = mailgate_notify::demo::DemoOptions {
                speed,
                duration,
                outbox,
                brokers,
                smtp,
                progress: true,
                ..Default::default()
            };
            let summary = mailgate_notify::demo::run(opts).await?;
            print!("{summary}");
            Ok(if summary.files_match_metrics() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Render {
            config,
            event,
            group,
            lang,
            digest,
        } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    for p in &e.problems {
                        eprintln!("{p}");
                    }
                    return Ok(ExitCode::from(2));
                }
            };
            let text = std::fs::read_to_string(&event)
                .with_context(|| format!("cannot read {}", event.display()))?;
            let event = produce::parse_event(None, &text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", event.display()))?;
            let opts = preview::PreviewOptions {
                group: group.map(Into::into),
                lang,
                digest,
            };
            match preview::preview(&config, event, &opts) {
                Ok(out) => {
                    std::io::stdout().write_all(out.as_bytes())?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Produce {
            brokers,
            topic,
            format,
            file,
            kind,
            registry,
        } => {
            let opts = ProduceOptions {
                brokers,
                topic,
                format,
                kind: kind.map(Into::into),
                registry_url: registry,
                librdkafka: Default::default(),
            };
            let report = match file {
                Some(path) => {
                    let f = std::fs::File::open(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?;
                    produce::produce(&opts, BufReader::new(f)).await?
                }
                None => produce::produce(&opts, std::io::stdin().lock()).await?,
            };
            for (line, why) in &report.invalid {
                eprintln!("line {line}: not sent: {why}");
            }
            for (line, why) in &report.failed {
                eprintln!("line {line}: broker refused: {why}");
            }
            println!(
                "{} acknowledged, {} failed, {} invalid",
                report.acknowledged,
                report.failed.len(),
                report.invalid.len()
            );
            Ok(if report.failed.is_empty() && report.invalid.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Encode {
            format,
            file,
            out,
            kind,
        } => {
            let mut text = String::new();
            std::fs::File::open(&file)
                .and_then(|mut f| f.read_to_string(&mut text))
                .with_context(|| format!("cannot read {}", file.display()))?;
            let event = produce::parse_event(kind.map(Into::into), &text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let mut encoder = produce::Encoder::new(format, None)?;
            let bytes = encoder.encode("encode", &event).await?;
            match out {
                Some(path) => std::fs::write(&path, bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => std::io::stdout().write_all(&bytes)?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn parse_instant(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("not an RFC 3339 instant: {e}"))
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Config::load(path).and_then(|c| match render::check(&c) {
        problems if problems.is_empty() => Ok(c),
        problems => Err(ConfigError { problems }),
    }) {
        Ok(_) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            for p in &e.problems {
                println!("{p}");
            }
            ExitCode::from(2)
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits at once (operators expect a
/// second Ctrl-C to mean "now").
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            // Without signal handlers we can still run; Ctrl-C then kills the process.
            tracing::warn!("cannot install signal handlers");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutdown requested; draining (send the signal again to exit at once)");
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("second signal: exiting without draining");
        std::process::exit(130);
    });
}
