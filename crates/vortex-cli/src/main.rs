//! The `vortex` command.
//!
//! For now it holds one job, `vortex demo`: the same export run twice, eager (collect, then
//! process) and streaming (a vortex pipeline), each in its own child process so that each
//! one's peak memory is its own, and a table comparing them.

mod bench;
mod convert;
mod demo;
mod export;
mod gen;
mod job;
mod logging;
mod paths;
mod progress;
mod record;
mod rows;
mod serve;
mod workloads;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Records are allocated on a decoding thread and freed on another; mimalloc frees across
/// threads far more cheaply than the system allocator (measured: see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Constant-memory streaming data pipelines: stream, don't store.
#[derive(Debug, Parser)]
#[command(name = "vortex", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: logging::LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Export generated orders to CSV twice, eager and streaming, and compare memory and time.
    Demo(demo::DemoArgs),
    /// Generate deterministic orders or logs.
    Gen(gen::GenArgs),
    /// Stream a query's rows to a file or stdout.
    Export(export::ExportArgs),
    /// Convert a file from one format to another, filtering on the way.
    Convert(convert::ConvertArgs),
    /// Bulk jobs shared by many workers through NATS JetStream: submit, status, wait, run.
    Job(job::JobArgs),
    /// Work on queued job items until stopped (or, with --exit-when-idle, until none is left).
    Worker(job::WorkerArgs),
    /// Serve named exports over HTTP, streamed.
    Serve(serve::ServeArgs),
    /// Run the benchmark suite, eager against streaming, and print its table.
    Bench(bench::BenchArgs),
    /// Run one side of the demo in this process and print its figures (used by `demo`).
    #[command(hide = true)]
    DemoWorker(demo::WorkerArgs),
    /// Run one side of one case of `bench` in this process and print its figures.
    #[command(hide = true)]
    BenchWorker(bench::worker::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let base = match cli.command {
        Command::Serve(_) => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    logging::init(&cli.log, base);
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::DemoWorker(args) => demo::worker(&args),
        Command::Gen(args) => gen::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Job(args) => job::run(&args),
        Command::Worker(args) => job::worker(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::BenchWorker(args) => bench::worker::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // The error and its causes on one line, each once.
            eprintln!("vortex: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime a command runs its pipelines on: one thread, with time and I/O.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Runs `work` until it ends, or until the process is told to stop (Ctrl-C, `SIGTERM`): then
/// `work` is dropped, which stops its pipeline and discards an output file being written (its
/// temporary file is removed), and the run fails.
async fn until_stopped<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let terminated = term.recv();
    #[cfg(not(unix))]
    let terminated = std::future::pending::<Option<()>>();
    tokio::select! {
        out = work => out,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted: the output was not written"),
        _ = terminated => anyhow::bail!("terminated: the output was not written"),
    }
}

/// Ends a command's runtime, waiting a moment for its threads: a writing thread removes its
/// temporary file as it stops, while a thread blocked reading stdin would never end.
fn shut_down(runtime: tokio::runtime::Runtime) {
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
}

/// A file to write, or stdout for `-`.
fn output_of(path: &std::path::Path) -> vortex_stream::io::Output {
    if path.as_os_str() == "-" {
        vortex_stream::io::Output::stdout()
    } else {
        vortex_stream::io::Output::path(path)
    }
}

/// A closed stdout (`vortex ... | head`) is a normal way for a run to end.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let broken = |cause: &(dyn std::error::Error + 'static)| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    };
    err.chain().any(|cause| {
        // A vortex error whose message tells its cause's text leaves that cause out of the
        // chain: it is still its `cause`.
        broken(cause)
            || cause
                .downcast_ref::<vortex_stream::Error>()
                .and_then(vortex_stream::Error::cause)
                .is_some_and(|inner| broken(&*inner))
    })
}
