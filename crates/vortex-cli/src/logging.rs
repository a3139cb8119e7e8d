//! Logging: the library's `tracing` spans and events (sources, sinks, parallel stages,
//! queries and loads; skipped and dead-lettered records, retries, breaker transitions), and
//! the service's request log, to stderr.

use tracing::Level;

/// How the log on stderr is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One line an event, for people.
    #[default]
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

/// The flags every command takes.
#[derive(Debug, clap::Args)]
pub(crate) struct LogArgs {
    /// More log on stderr: -v info, -vv debug (each record skipped, each retry, each stage's
    /// start and end), -vvv trace. Without it, warnings and errors only (`serve` logs each
    /// request at info, so it starts at info).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// How the log on stderr is written: `text`, or `json` (one object a line).
    #[arg(long, value_enum, default_value_t, global = true)]
    log_format: LogFormat,
}

/// Installs the subscriber: events at `base` and up, each `-v` one level more.
pub(crate) fn init(args: &LogArgs, base: Level) {
    let levels = [
        Level::ERROR,
        Level::WARN,
        Level::INFO,
        Level::DEBUG,
        Level::TRACE,
    ];
    let from = levels.iter().position(|l| *l == base).unwrap_or(1);
    let level = levels[(from + usize::from(args.verbose)).min(levels.len() - 1)];
    let logger = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(args.verbose > 1);
    // Already set (tests running several commands in one process): the first one's stays.
    let _ = match args.log_format {
        LogFormat::Text => logger.try_init(),
        LogFormat::Json => logger.json().flatten_event(true).try_init(),
    };
}
