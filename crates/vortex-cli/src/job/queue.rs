//! Jobs shared by workers through NATS JetStream: work items on a work-queue stream, read by
//! one durable consumer that every worker pulls from, and each job's state in a key-value
//! bucket. JetStream does the coordination (delivery, redelivery after a worker dies,
//! replication); vortex adds none of its own.
//!
//! Each queue (`--queue`, `default` unless told) has its own:
//!
//! - Stream `VORTEX_<QUEUE>` (work-queue retention) on subjects `vortex.<queue>.<job>`: one
//!   message per item, its id `<job>.<n>` (publishing a job again stores nothing twice).
//! - Consumer `workers`: explicit acks. A worker acknowledges an item only after its
//!   output is committed and its state recorded; while it runs, it tells the server it is in
//!   progress (every third of the ack wait); a worker that dies stops telling, and the item is
//!   delivered again to another.
//! - Bucket `vortex_<queue>`: `<job>.spec` (the job file and its item count) and
//!   `<job>.item.<n>` (running, retrying, done or failed, with counts, worker and error).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::{self, kv, stream, AckKind};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::item::ItemStats;
use super::spec::{JobSpec, WorkItem};

const CONSUMER: &str = "workers";

/// A job as stored: its file, how many items it was cut into, and when.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    pub(crate) id: String,
    pub(crate) spec: JobSpec,
    pub(crate) items: u64,
    pub(crate) submitted_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    Running,
    /// Failed, and to be tried again after a backoff.
    Retrying,
    Done,
    Failed,
}

/// An item's latest state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ItemState {
    pub(crate) state: State,
    pub(crate) worker: String,
    /// The delivery this state is of: 1 for the first, more after a worker died or failed.
    pub(crate) attempt: u64,
    pub(crate) started_ms: u64,
    pub(crate) finished_ms: Option<u64>,
    pub(crate) stats: Option<ItemStats>,
    pub(crate) error: Option<String>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The JetStream side of jobs: the work stream, its consumer and the state bucket.
pub(crate) struct Queue {
    js: jetstream::Context,
    kv: kv::Store,
    stream: String,
    subject: String,
}

impl Queue {
    /// Connects to the server(s) `url` names (`nats://a:4222,nats://b:4222`, any of a
    /// cluster), creating the stream and the bucket, with `replicas` copies, where missing.
    pub(crate) async fn connect(url: &str, queue: &str, replicas: usize) -> Result<Queue> {
        if queue.is_empty()
            || !queue
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bail!("--queue {queue:?}: letters, digits, '_' and '-' only");
        }
        let stream = format!("VORTEX_{}", queue.to_uppercase());
        let subject = format!("vortex.{queue}");
        let bucket = format!("vortex_{queue}");
        let servers: Vec<String> = url.split(',').map(str::trim).map(str::to_owned).collect();
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(servers)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let js = jetstream::new(client);
        let replicas = replicas.max(1);
        let work = stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{subject}.>")],
            retention: stream::RetentionPolicy::WorkQueue,
            num_replicas: replicas,
            ..Default::default()
        };
        patiently("opening the work stream", || {
            js.get_or_create_stream(work.clone())
        })
        .await?;
        // The bucket's stream is made here rather than by `create_key_value`, which asks for
        // account details that JetStream servers before 2.10 answer in a form it cannot read.
        // Reads go to the stream's leader (no direct gets from replicas that may lag).
        let state = stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: false,
            discard: stream::DiscardPolicy::New,
            num_replicas: replicas,
            ..Default::default()
        };
        patiently("opening the job state bucket", || {
            js.get_or_create_stream(state.clone())
        })
        .await?;
        let kv = patiently("opening the job state bucket", || js.get_key_value(&bucket)).await?;
        Ok(Queue {
            js,
            kv,
            stream,
            subject,
        })
    }

    /// The consumer every worker pulls from; `ack_wait` applies when it is created.
    pub(crate) async fn consumer(&self, ack_wait: Duration) -> Result<PullConsumer> {
        let stream = patiently("opening the work stream", || {
            self.js.get_stream(&self.stream)
        })
        .await?;
        let config = pull::Config {
            durable_name: Some(CONSUMER.to_owned()),
            ack_policy: AckPolicy::Explicit,
            ack_wait,
            max_deliver: -1,
            ..Default::default()
        };
        patiently("opening the workers' consumer", || {
            stream.get_or_create_consumer(CONSUMER, config.clone())
        })
        .await
    }

    /// Stores the job, then publishes its items, each confirmed by the server.
    pub(crate) async fn submit(&self, job: &JobRecord, items: &[WorkItem]) -> Result<()> {
        self.kv
            .put(
                format!("{}.spec", job.id),
                Bytes::from(serde_json::to_vec(job)?),
            )
            .await
            .context("storing the job")?;
        for chunk in items.chunks(256) {
            let mut acks = Vec::with_capacity(chunk.len());
            for item in chunk {
                let publish = jetstream::message::PublishMessage::build()
                    .payload(Bytes::from(serde_json::to_vec(item)?))
                    .message_id(format!("{}.{}", item.job, item.n));
                acks.push(
                    self.js
                        .send_publish(format!("{}.{}", self.subject, item.job), publish)
                        .await
                        .context("publishing a work item")?,
                );
            }
            for ack in acks {
                ack.await.context("publishing a work item")?;
            }
        }
        Ok(())
    }

    /// The job `id`, if it exists.
    pub(crate) async fn job(&self, id: &str) -> Result<Option<JobRecord>> {
        let key = format!("{id}.spec");
        let found = patiently("reading the job", || self.kv.get(key.as_str())).await?;
        let Some(bytes) = found else {
            return Ok(None);
        };
        Ok(Some(
            serde_json::from_slice(&bytes).context("reading the job")?,
        ))
    }

    pub(crate) async fn set_state(&self, item: &WorkItem, state: &ItemState) -> Result<()> {
        let value = Bytes::from(serde_json::to_vec(state)?);
        let key = format!("{}.item.{}", item.job, item.n);
        patiently("recording an item's state", || {
            self.kv.put(key.as_str(), value.clone())
        })
        .await?;
        Ok(())
    }

    /// The latest state of `item`, if it has one.
    pub(crate) async fn state(&self, item: &WorkItem) -> Result<Option<ItemState>> {
        let key = format!("{}.item.{}", item.job, item.n);
        let found = patiently("reading an item's state", || self.kv.get(key.as_str())).await?;
        let Some(bytes) = found else {
            return Ok(None);
        };
        Ok(Some(
            serde_json::from_slice(&bytes).context("reading an item's state")?,
        ))
    }

    /// The job and the latest state of each item that has one.
    pub(crate) async fn status(&self, id: &str) -> Result<(JobRecord, BTreeMap<u64, ItemState>)> {
        let job = self
            .job(id)
            .await?
            .with_context(|| format!("no job {id} on this server"))?;
        // One read per item, many at a time: plain reads of the leader, which a watch's
        // push consumer is not (it stalled under load in tests).
        let reads = futures_util::stream::iter(0..job.items)
            .map(|n| async move {
                let key = format!("{id}.item.{n}");
                let value =
                    patiently("reading the job's state", || self.kv.get(key.as_str())).await;
                (n, value)
            })
            .buffered(64);
        let mut reads = std::pin::pin!(reads);
        let mut states = BTreeMap::new();
        while let Some((n, value)) = reads.next().await {
            let value = value?;
            if let Some(bytes) = value {
                let state: ItemState =
                    serde_json::from_slice(&bytes).context("reading an item's state")?;
                states.insert(n, state);
            }
        }
        Ok((job, states))
    }
}

/// Runs `op` until it succeeds, for up to 30 seconds: a cluster that lost a node answers
/// nothing while it elects new leaders, which takes a few seconds.
async fn patiently<T, E, F, Fut>(what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("vortex: {what}: {e}; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).context(what.to_owned()),
        }
    }
}

/// Whether the consumer has nothing left: no item waiting, none being worked on.
pub(crate) async fn drained(consumer: &mut PullConsumer) -> Result<bool> {
    let info = consumer.info().await?;
    Ok(info.num_pending == 0 && info.num_ack_pending == 0)
}

/// How long to wait before attempt `attempt + 1`: `base` doubled for each attempt after the
/// first, at most 5 minutes.
pub(crate) fn backoff(base: f64, attempt: u64) -> Duration {
    let exp = i32::try_from(attempt.saturating_sub(1).min(30)).unwrap_or(30);
    Duration::from_secs_f64((base * 2f64.powi(exp)).min(300.0))
}

/// Settles an item's message: acknowledged, handed back for a retry after `delay`, or
/// dropped for good; the first waits for the server's confirmation.
pub(crate) async fn settle(message: &jetstream::Message, verdict: Verdict) -> Result<()> {
    match verdict {
        Verdict::Done => message.double_ack().await,
        Verdict::Retry(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
        Verdict::Failed => message.ack_with(AckKind::Term).await,
    }
    .map_err(|e| anyhow::anyhow!("settling a work item: {e}"))
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Verdict {
    Done,
    Retry(Duration),
    Failed,
}

/// Tells the server the item is still being worked on, every third of the ack wait, until
/// dropped.
pub(crate) async fn keep_alive(message: &jetstream::Message, ack_wait: Duration) {
    let every = (ack_wait / 3).max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        // A failed progress ack only risks a redelivery, which the item's commit makes safe.
        let _ = message.ack_with(AckKind::Progress).await;
    }
}

/// A job id: the submission time and a random part, letters and digits only (a subject and
/// key token).
pub(crate) fn new_job_id() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_ms());
    format!("j{:x}{:04x}", now_ms(), hasher.finish() & 0xffff)
}

/// Checks `id` is a job id, so that it cannot reach other keys of the bucket.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        bail!("{id:?} is not a job id");
    }
    Ok(())
}
