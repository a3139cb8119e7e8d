//! `vortex job` and `vortex worker`: bulk jobs cut into work items and shared by any number of
//! worker processes, on any number of machines, through NATS JetStream (see [`queue`]).
//!
//! A job's output is the single-process result whatever was killed on the way: each item is
//! committed whole (a part file renamed into place, or one transaction of upserts) before
//! its message is acknowledged, and an item run again writes the same thing.

mod item;
mod queue;
mod spec;
mod split;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use futures_util::StreamExt as _;
use serde::Serialize;

use item::{part_name, rejects_name, run_item, ItemStats};
use queue::{ItemState, JobRecord, Queue, State, Verdict};
use spec::{JobSpec, Sink, WorkItem};

#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Cut a job file into work items and queue them for workers; prints the job id.
    Submit(SubmitArgs),
    /// A job's progress: items done, running, pending and failed, records, workers.
    Status(StatusArgs),
    /// Wait for a job to end: exit 0 when every item is done, 1 when any failed.
    Wait(WaitArgs),
    /// Run a job in this process, item after item, without a server.
    Run(RunArgs),
}

/// Where jobs are queued.
#[derive(Debug, Args)]
struct Server {
    /// The NATS server(s): `nats://HOST:4222`, or several of a cluster, comma-separated.
    #[arg(long)]
    nats: String,
    /// The queue: jobs and workers of one queue share its stream and state.
    #[arg(long, default_value = "default")]
    queue: String,
}

impl Server {
    async fn connect(&self, replicas: usize) -> Result<Queue> {
        Queue::connect(&self.nats, &self.queue, replicas).await
    }
}

#[derive(Debug, Args)]
struct SubmitArgs {
    #[command(flatten)]
    server: Server,
    /// The job file (TOML).
    job: PathBuf,
    /// Copies of the work stream and the job state, where they are created (a cluster: 3).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Seconds a worker may go silent before its item is given to another (where the
    /// workers' consumer is created; workers tell the server they are alive three times
    /// within it).
    #[arg(long, default_value_t = 30.0)]
    ack_wait: f64,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    server: Server,
    /// The job id `submit` printed.
    id: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct WaitArgs {
    #[command(flatten)]
    server: Server,
    /// The job id `submit` printed.
    id: String,
    /// Give up (exit 1) after this many seconds.
    #[arg(long)]
    timeout: Option<f64>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The job file (TOML).
    job: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    server: Server,
    /// Items worked on at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Exit once no item is waiting or being worked on anywhere (for `--idle` seconds).
    #[arg(long)]
    exit_when_idle: bool,
    /// With `--exit-when-idle`: how long the queue must be quiet.
    #[arg(long, default_value_t = 3.0)]
    idle: f64,
    /// The worker's name in the job's state (default: host name and process id).
    #[arg(long)]
    name: Option<String>,
}

pub(crate) fn run(args: &JobArgs) -> Result<()> {
    let runtime = crate::runtime()?;
    let outcome = runtime.block_on(crate::until_stopped(async {
        match &args.command {
            JobCommand::Submit(args) => submit(args).await,
            JobCommand::Status(args) => status(args).await,
            JobCommand::Wait(args) => wait(args).await,
            JobCommand::Run(args) => run_locally(args).await,
        }
    }));
    crate::shut_down(runtime);
    outcome
}

fn seconds(flag: &str, value: f64) -> Result<Duration> {
    if !(value.is_finite() && value > 0.0 && value < 1e9) {
        bail!("{flag} must be a number of seconds above 0");
    }
    Ok(Duration::from_secs_f64(value))
}

async fn submit(args: &SubmitArgs) -> Result<()> {
    let start = Instant::now();
    let ack_wait = seconds("--ack-wait", args.ack_wait)?;
    let spec = JobSpec::load(&args.job)?;
    prepare_sink(&spec)?;
    let queue = args.server.connect(args.replicas).await?;
    queue.consumer(ack_wait).await?;
    let id = queue::new_job_id();
    let items = split::split(&spec, &id).await?;
    let job = JobRecord {
        id: id.clone(),
        spec,
        items: items.len() as u64,
        submitted_ms: queue::now_ms(),
    };
    queue.submit(&job, &items).await?;
    eprintln!(
        "vortex job: {id}: {} work items queued in {:.2} s",
        items.len(),
        start.elapsed().as_secs_f64()
    );
    println!("{id}");
    Ok(())
}

/// Creates a part-file folder before any worker writes to it.
fn prepare_sink(spec: &JobSpec) -> Result<()> {
    if let Sink::Dir { dir, .. } = spec.sink()? {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// Runs every item here, in order: the single-process result a distributed run must equal.
async fn run_locally(args: &RunArgs) -> Result<()> {
    let start = Instant::now();
    let spec = JobSpec::load(&args.job)?;
    prepare_sink(&spec)?;
    let items = split::split(&spec, "local").await?;
    let mut done = Vec::with_capacity(items.len());
    for item in &items {
        let stats = run_item(&spec, item)
            .await
            .with_context(|| format!("item {} ({})", item.n, item.piece.describe()))?;
        done.push(stats);
    }
    write_manifest(&spec, &done)?;
    let mut total = ItemStats::default();
    done.iter().for_each(|s| total.add(s));
    eprintln!(
        "vortex job: {} items, {} records read: {} written, {} filtered out, {} rejected in {:.2} s",
        items.len(),
        total.read,
        total.written,
        total.filtered,
        total.rejected,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The manifest of a finished job's part files: the parts in order and their records.
#[derive(Serialize)]
struct Manifest {
    parts: Vec<ManifestPart>,
    records: u64,
}

#[derive(Serialize)]
struct ManifestPart {
    file: String,
    records: u64,
    /// The records of the item's piece the job skipped, each with its position in `rejects`.
    rejected: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejects: Option<String>,
}

/// Writes `manifest.json` beside the part files (none for a table), replaced atomically.
///
/// Every item is done by then: a temporary part (or rejects) file still there was left by a
/// worker that was killed while writing it, and is removed.
fn write_manifest(spec: &JobSpec, items: &[ItemStats]) -> Result<()> {
    let Sink::Dir { dir, format } = spec.sink()? else {
        return Ok(());
    };
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if (name.starts_with(".part-") || name.starts_with(".rejected-")) && name.ends_with(".tmp")
        {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    let parts: Vec<ManifestPart> = (0..)
        .zip(items)
        .map(|(n, stats)| ManifestPart {
            file: part_name(n, format),
            records: stats.written,
            rejected: stats.rejected,
            rejects: (stats.rejected > 0).then(|| rejects_name(n)),
        })
        .collect();
    let manifest = Manifest {
        records: parts.iter().map(|p| p.records).sum(),
        parts,
    };
    let path = dir.join("manifest.json");
    let tmp = dir.join(".manifest.json.tmp");
    let mut text = serde_json::to_vec_pretty(&manifest)?;
    text.push(b'\n');
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A job's progress, summed from its items' states.
#[derive(Debug, Default, Serialize)]
struct Summary {
    id: String,
    items: u64,
    done: u64,
    running: u64,
    retrying: u64,
    pending: u64,
    failed: u64,
    records: ItemStats,
    /// Deliveries after the first, of items that ended.
    redeliveries: u64,
    seconds: f64,
    records_per_second: f64,
    workers: BTreeMap<String, WorkerSummary>,
    errors: Vec<ItemError>,
}

#[derive(Debug, Default, Serialize)]
struct WorkerSummary {
    items: u64,
    records_written: u64,
}

#[derive(Debug, Serialize)]
struct ItemError {
    item: u64,
    attempt: u64,
    error: String,
}

fn summarize(job: &JobRecord, states: &BTreeMap<u64, ItemState>) -> Summary {
    let mut summary = Summary {
        id: job.id.clone(),
        items: job.items,
        ..Summary::default()
    };
    let mut last = job.submitted_ms;
    for (n, state) in states {
        match state.state {
            State::Running => summary.running += 1,
            State::Retrying => summary.retrying += 1,
            State::Done => summary.done += 1,
            State::Failed => summary.failed += 1,
        }
        if matches!(state.state, State::Done | State::Failed) {
            summary.redeliveries += state.attempt.saturating_sub(1);
            last = last.max(state.finished_ms.unwrap_or(0));
        }
        if let Some(stats) = &state.stats {
            summary.records.add(stats);
            let worker = summary.workers.entry(state.worker.clone()).or_default();
            worker.items += 1;
            worker.records_written += stats.written;
        }
        if matches!(state.state, State::Failed | State::Retrying) {
            summary.errors.push(ItemError {
                item: *n,
                attempt: state.attempt,
                error: state.error.clone().unwrap_or_default(),
            });
        }
    }
    summary.pending = job.items.saturating_sub(states.len() as u64);
    if summary.done + summary.failed < job.items {
        last = queue::now_ms();
    }
    summary.seconds = last.saturating_sub(job.submitted_ms) as f64 / 1000.0;
    if summary.seconds > 0.0 {
        summary.records_per_second = summary.records.written as f64 / summary.seconds;
    }
    summary
}

fn print_summary(s: &Summary) {
    println!(
        "job {}: {} items: {} done, {} running, {} pending, {} retrying, {} failed; {} redelivered",
        s.id, s.items, s.done, s.running, s.pending, s.retrying, s.failed, s.redeliveries
    );
    println!(
        "records: {} read: {} written, {} filtered out, {} rejected",
        s.records.read, s.records.written, s.records.filtered, s.records.rejected
    );
    println!(
        "time: {:.2} s, {:.0} records written a second",
        s.seconds, s.records_per_second
    );
    if !s.workers.is_empty() {
        println!("{:<32} {:>8} {:>16}", "worker", "items", "records written");
        for (name, w) in &s.workers {
            println!("{name:<32} {:>8} {:>16}", w.items, w.records_written);
        }
    }
    for e in &s.errors {
        println!("item {} (attempt {}): {}", e.item, e.attempt, e.error);
    }
}

async fn status(args: &StatusArgs) -> Result<()> {
    queue::check_id(&args.id)?;
    let queue = args.server.connect(1).await?;
    let (job, states) = queue.status(&args.id).await?;
    let summary = summarize(&job, &states);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

async fn wait(args: &WaitArgs) -> Result<()> {
    queue::check_id(&args.id)?;
    let deadline = args
        .timeout
        .map(|t| seconds("--timeout", t))
        .transpose()?
        .map(|t| Instant::now() + t);
    let queue = args.server.connect(1).await?;
    loop {
        let (job, states) = queue.status(&args.id).await?;
        let summary = summarize(&job, &states);
        if summary.done + summary.failed == job.items {
            print_summary(&summary);
            if summary.failed > 0 {
                bail!("job {}: {} items failed", job.id, summary.failed);
            }
            let stats: Vec<ItemStats> = states.values().filter_map(|s| s.stats).collect();
            write_manifest(&job.spec, &stats)?;
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            print_summary(&summary);
            bail!("job {}: not done when --timeout ran out", job.id);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn worker(args: &WorkerArgs) -> Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let idle = seconds("--idle", args.idle)?;
    let name: Arc<str> = Arc::from(args.name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "worker".to_owned());
        format!("{host}-{}", std::process::id())
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.concurrency.clamp(2, 16))
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let outcome = runtime.block_on(crate::until_stopped(work_loop(args, idle, name)));
    crate::shut_down(runtime);
    outcome
}

async fn work_loop(args: &WorkerArgs, idle: Duration, name: Arc<str>) -> Result<()> {
    let queue = Arc::new(args.server.connect(1).await?);
    let mut consumer = queue.consumer(Duration::from_secs(30)).await?;
    let ack_wait = consumer.cached_info().config.ack_wait;
    let mut running = tokio::task::JoinSet::new();
    let mut quiet_since = Instant::now();
    let (mut done, mut failed) = (0u64, 0u64);
    loop {
        let free = args.concurrency - running.len();
        if free > 0 {
            let batch = consumer
                .batch()
                .max_messages(free)
                .expires(Duration::from_secs(1))
                .messages()
                .await;
            match batch {
                Ok(mut batch) => {
                    while let Some(message) = batch.next().await {
                        match message {
                            Ok(message) => {
                                quiet_since = Instant::now();
                                let (queue, name) = (Arc::clone(&queue), Arc::clone(&name));
                                running.spawn(work(queue, message, name, ack_wait));
                            }
                            Err(e) => {
                                eprintln!("vortex worker {name}: pulling work: {e}");
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    // A server restarting or a cluster electing a leader: try again.
                    eprintln!("vortex worker {name}: pulling work: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        let mut ended = Vec::new();
        if running.len() == args.concurrency {
            ended.extend(running.join_next().await);
        }
        while let Some(result) = running.try_join_next() {
            ended.push(result);
        }
        for result in ended {
            match result.context("a work item's task")? {
                Ok(true) => done += 1,
                Ok(false) => failed += 1,
                Err(e) => eprintln!("vortex worker {name}: {e:#}"),
            }
        }
        if running.is_empty() && args.exit_when_idle && quiet_since.elapsed() >= idle {
            match queue::drained(&mut consumer).await {
                Ok(true) => break,
                Ok(false) => quiet_since = Instant::now(),
                Err(e) => eprintln!("vortex worker {name}: {e:#}"),
            }
        }
    }
    eprintln!("vortex worker {name}: idle: {done} items done here, {failed} attempts failed");
    Ok(())
}

/// Works on one item, from its delivery to its acknowledgement: `true` if it was done.
async fn work(
    queue: Arc<Queue>,
    message: async_nats::jetstream::Message,
    worker: Arc<str>,
    ack_wait: Duration,
) -> Result<bool> {
    let attempt = message
        .info()
        .map_or(1, |info| u64::try_from(info.delivered).unwrap_or(1));
    let item: WorkItem = match serde_json::from_slice(&message.payload) {
        Ok(item) => item,
        Err(e) => {
            queue::settle(&message, Verdict::Failed).await?;
            bail!("a message on the work stream is no work item, dropped: {e}");
        }
    };
    let Some(job) = queue.job(&item.job).await? else {
        // Not found yet may be a replica behind: handed back a few times before it is dropped.
        if attempt < 5 {
            queue::settle(&message, Verdict::Retry(Duration::from_secs(2))).await?;
            bail!(
                "job {} not found: its item {} handed back",
                item.job,
                item.n
            );
        }
        queue::settle(&message, Verdict::Failed).await?;
        bail!("job {} is gone: its item {} dropped", item.job, item.n);
    };
    let started = Instant::now();
    let mut state = ItemState {
        state: State::Running,
        worker: worker.to_string(),
        attempt,
        started_ms: queue::now_ms(),
        finished_ms: None,
        stats: None,
        error: None,
    };
    queue.set_state(&item, &state).await?;
    let outcome = tokio::select! {
        outcome = Box::pin(run_item(&job.spec, &item)) => outcome,
        () = queue::keep_alive(&message, ack_wait) => unreachable!("keep_alive never ends"),
    };
    state.finished_ms = Some(queue::now_ms());
    let what = format!(
        "job {} item {} ({})",
        item.job,
        item.n,
        item.piece.describe()
    );
    let verdict = match outcome {
        Ok(stats) => {
            eprintln!(
                "vortex worker {worker}: {what}: {} records written in {:.2} s",
                stats.written,
                started.elapsed().as_secs_f64()
            );
            state.state = State::Done;
            state.stats = Some(stats);
            Verdict::Done
        }
        Err(e)
            if queue
                .state(&item)
                .await?
                .is_some_and(|s| s.state == State::Done) =>
        {
            // A delivery given up on as lost (a worker silent for too long) that failed
            // after another delivery did the item: the item stays done.
            eprintln!("vortex worker {worker}: {what}: failed, but was done meanwhile: {e:#}");
            return Ok(false);
        }
        Err(e) => {
            let retry = &job.spec.retry;
            state.error = Some(format!("{e:#}"));
            if attempt < retry.max_attempts.get() {
                let delay = queue::backoff(retry.backoff_seconds, attempt);
                eprintln!(
                    "vortex worker {worker}: {what}: attempt {attempt} failed, retried in {:.1} s: {e:#}",
                    delay.as_secs_f64()
                );
                state.state = State::Retrying;
                Verdict::Retry(delay)
            } else {
                eprintln!("vortex worker {worker}: {what}: failed after {attempt} attempts: {e:#}");
                state.state = State::Failed;
                Verdict::Failed
            }
        }
    };
    // The state first: an item acknowledged is never left looking unfinished.
    queue.set_state(&item, &state).await?;
    queue::settle(&message, verdict).await?;
    Ok(state.state == State::Done)
}
