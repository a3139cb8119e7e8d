//! `vortex convert` with a message broker at either end: messages are acknowledged only once
//! the records made of them are committed (a part file renamed into place, a publish
//! confirmed by the broker written to).
//!
//! - `nats://HOST:PORT/STREAM/CONSUMER` reads a JetStream stream through a durable consumer;
//!   `nats://HOST:PORT/SUBJECT` publishes to a subject (a stream must capture it).
//! - `amqp://USER:PASS@HOST:PORT/VHOST?queue=NAME` reads a RabbitMQ queue;
//!   `amqp://USER:PASS@HOST:PORT/VHOST?routing_key=KEY[&exchange=NAME]` publishes.
//!
//! A broker is read until it has been idle for `--idle` seconds. Its records go to a
//! directory of JSON Lines part files (each renamed into place when complete, then its
//! messages acknowledged) or to another broker.

use std::num::{NonZeroU16, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use serde_json::value::RawValue;
use vortex_stream::ack::{Ack, AckLedger, AckReport, Acked};
use vortex_stream::brokers::amqp::{AmqpSink, AmqpSource};
use vortex_stream::brokers::nats::{JetStreamSink, JetStreamSource};
use vortex_stream::{AckPipeline, BoxError, Error, ErrorKind};

use vortex_stream::db::{LoadMethod, Table, Value};

use super::{
    project, records, resolve, ConvertArgs, Field, Filter, Format, NamedFields, Record, Shape,
};

/// One end of a conversion that is a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A NATS server and the path after it (`STREAM/CONSUMER` or `SUBJECT`).
    Nats { server: String, path: Vec<String> },
    /// A RabbitMQ URL without the parameters vortex reads, and those parameters.
    Amqp {
        url: String,
        queue: Option<String>,
        exchange: String,
        routing_key: Option<String>,
    },
    /// A database table (an output only): the database's URL, the table and its upsert keys.
    Table {
        url: String,
        table: String,
        keys: Vec<String>,
    },
}

impl Endpoint {
    /// The broker `text` names, if it names one.
    pub(crate) fn parse(text: &str) -> Result<Option<Endpoint>> {
        if let Some(rest) = text.strip_prefix("nats://") {
            let mut parts = rest.split('/').filter(|p| !p.is_empty());
            let server = parts.next().context("a nats:// URL needs a server")?;
            return Ok(Some(Endpoint::Nats {
                server: server.to_owned(),
                path: parts.map(str::to_owned).collect(),
            }));
        }
        let database = ["postgres://", "postgresql://", "mysql://", "sqlite://"]
            .iter()
            .any(|scheme| text.starts_with(scheme));
        if database {
            return Ok(table_endpoint(text));
        }
        if !(text.starts_with("amqp://") || text.starts_with("amqps://")) {
            return Ok(None);
        }
        let (base, query) = text.split_once('?').unwrap_or((text, ""));
        let (mut queue, mut exchange, mut routing_key, mut rest) =
            (None, String::new(), None, Vec::new());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("queue", value)) => queue = Some(value.to_owned()),
                Some(("exchange", value)) => value.clone_into(&mut exchange),
                Some(("routing_key", value)) => routing_key = Some(value.to_owned()),
                _ => rest.push(pair),
            }
        }
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        Ok(Some(Endpoint::Amqp {
            url,
            queue,
            exchange,
            routing_key,
        }))
    }

    /// The name the summary gives it: no credentials.
    pub(crate) fn name(&self) -> String {
        match self {
            Endpoint::Nats { server, path } => format!("nats://{server}/{}", path.join("/")),
            Endpoint::Amqp {
                queue, routing_key, ..
            } => format!(
                "amqp {}",
                queue.as_deref().or(routing_key.as_deref()).unwrap_or("")
            ),
            Endpoint::Table { table, .. } => format!("table {table}"),
        }
    }
}

/// A database URL naming a table (`?table=NAME[&key=COLUMN]…`) as an output; `None` when it
/// names none (it is then no output of `convert`).
fn table_endpoint(text: &str) -> Option<Endpoint> {
    let (base, query) = text.split_once('?')?;
    let (mut table, mut keys, mut rest) = (None, Vec::new(), Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("table", value)) => table = Some(value.to_owned()),
            Some(("key", value)) => keys.push(value.to_owned()),
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Some(Endpoint::Table {
        url,
        table: table?,
        keys,
    })
}

/// Broker options of `vortex convert`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BrokerArgs {
    /// Reading a broker: stop once no message has come for this many seconds.
    #[arg(long, default_value_t = 5.0)]
    idle: f64,
    /// Reading a broker: the most messages unacknowledged at once.
    #[arg(long, default_value_t = 1024)]
    window: u16,
    /// Reading a broker into a directory: records per part file (each part is a commit).
    #[arg(long, default_value_t = 10_000)]
    part_records: usize,
    /// Reading NATS: the ack wait of the consumer, when vortex creates it: how long a message
    /// given to a worker that died waits before it is delivered again.
    #[arg(long, default_value_t = 30.0)]
    ack_wait: f64,
}

/// Counts of a run, for the summary line.
#[derive(Default)]
struct Counts {
    records: AtomicU64,
    written: AtomicU64,
    filtered: AtomicU64,
    parts: AtomicU64,
}

/// Runs a conversion with a broker at one end or both.
pub(super) fn run(
    args: &ConvertArgs,
    from: Option<&Endpoint>,
    to: Option<&Endpoint>,
) -> Result<()> {
    let start = Instant::now();
    let broker = &args.broker;
    if broker.window == 0 {
        bail!("--window must be at least 1");
    }
    let part_records =
        NonZeroUsize::new(broker.part_records).context("--part-records must be at least 1")?;
    for (flag, seconds) in [("--idle", broker.idle), ("--ack-wait", broker.ack_wait)] {
        if !(seconds.is_finite() && seconds > 0.0 && seconds < 1e9) {
            bail!("{flag} must be a number of seconds above 0");
        }
    }
    if from.is_some() {
        if args.limit.is_some() {
            bail!("--limit is not for a broker input: it is read until idle (--idle)");
        }
        if to.is_none() {
            if args.to.is_some_and(|f| f != Format::Jsonl) {
                bail!("a broker input is written as JSON Lines part files: drop --to");
            }
            if args.output.is_file() {
                bail!(
                    "{} is a file: a broker input is written to a directory of part files",
                    args.output.display()
                );
            }
            std::fs::create_dir_all(&args.output)
                .with_context(|| format!("creating {}", args.output.display()))?;
        }
    }
    let filters: Vec<Filter> = args
        .filters
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<Result<_>>()?;
    let select: Vec<Arc<str>> = args.select.iter().map(|s| Arc::from(s.as_str())).collect();
    let counts = Arc::new(Counts::default());
    let runtime = crate::runtime()?;
    let outcome = runtime.block_on(crate::until_stopped(async {
        let policy = super::policy(args).await?;
        let records = match from {
            Some(endpoint) => {
                let idle = Duration::from_secs_f64(broker.idle);
                let ack_wait = Duration::from_secs_f64(broker.ack_wait);
                let window = NonZeroU16::new(broker.window).unwrap_or(NonZeroU16::MIN);
                let counter = Arc::clone(&counts);
                source(endpoint, idle, ack_wait, window)
                    .await?
                    .inspect(move |_| {
                        counter.records.fetch_add(1, Ordering::Relaxed);
                    })
                    .try_map(|payload| -> Result<Record, BoxError> {
                        let raw: Box<RawValue> = serde_json::from_slice(&payload)?;
                        Ok(Record::from_json(raw)?)
                    })
            }
            None => file_records(args, &filters, &counts)?,
        };
        let (dropped, out) = (Arc::clone(&counts), Arc::clone(&counts));
        let kept = records
            .try_map(move |record| -> Result<(Record, bool), BoxError> {
                // A record `--where` cannot judge is rejected, under the policy, not dropped.
                let keep = super::filter::keeps_all(&filters, &record)?;
                Ok((record, keep))
            })
            .on_error(policy.clone())
            .filter(move |(_, keep)| {
                if !keep {
                    dropped.filtered.fetch_add(1, Ordering::Relaxed);
                }
                *keep
            })
            .map(move |(record, _)| project(record, &select))
            .inspect(move |_| {
                out.written.fetch_add(1, Ordering::Relaxed);
            });
        let report = match to {
            Some(Endpoint::Table { url, table, keys }) => {
                let columns = args.select.clone();
                if columns.is_empty() {
                    bail!("a table output needs --select naming its columns, in order");
                }
                let db = vortex_stream::db::Database::open(url)?;
                let mut target = Table::new(table.as_str(), columns.clone())
                    .batch(part_records)
                    .method(LoadMethod::Inserts);
                if !keys.is_empty() {
                    target = target.upsert(keys.clone());
                }
                kept.map(move |record| row(&record, &columns))
                    .load(&db, target, Duration::from_secs(1))
                    .await?
            }
            Some(endpoint) => publish_to(kept.try_map(|record| to_json(&record)), endpoint).await?,
            None => {
                let dir = args.output.clone();
                let parts = Arc::clone(&counts);
                let prefix = run_prefix();
                kept.commit_batches(part_records, Duration::from_secs(1), move |batch| {
                    let n = parts.parts.fetch_add(1, Ordering::Relaxed) + 1;
                    let path = dir.join(format!("part-{prefix}-{n:06}.jsonl"));
                    write_part(path, batch)
                })
                .await?
            }
        };
        Ok((policy, report))
    }));
    crate::shut_down(runtime);
    let (policy, acks) = outcome?;
    let report = policy.report();
    let what = match (from, to) {
        (Some(from), _) => from.name(),
        (None, Some(to)) => to.name(),
        (None, None) => String::new(),
    };
    eprintln!(
        "vortex convert ({what}): {} records in: {} written{}, {} filtered out, {} rejected; messages: {} acknowledged, {} handed back, {} received again after an earlier delivery; {} dead-lettered in {:.2} s",
        counts.records.load(Ordering::Relaxed).max(report.items_in()),
        counts.written.load(Ordering::Relaxed),
        match counts.parts.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!(" in {n} part files"),
        },
        counts.filtered.load(Ordering::Relaxed),
        report.errors_total(),
        acks.acked,
        acks.nacked,
        acks.redelivered,
        report.dead_lettered(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The records of a file as the broker sink's values, each keyed by its input and record
/// number (the message id: a file converted again is stored once by JetStream).
fn file_records(
    args: &ConvertArgs,
    filters: &[Filter],
    counts: &Arc<Counts>,
) -> Result<AckPipeline<Record>> {
    let from = resolve(&args.input, args.from, "--from")?;
    let select: Vec<Arc<str>> = args.select.iter().map(|s| Arc::from(s.as_str())).collect();
    let shape = Shape {
        to: Format::Jsonl,
        named: Arc::new(NamedFields::new(&select, filters)),
        select,
        filters: !filters.is_empty(),
        columns: Arc::default(),
        fixed_fields: from == Format::Csv && !args.flexible,
    };
    let counter = Arc::clone(counts);
    let items = records(&args.input, from, args.flexible, &super::Offset::default())
        .inspect(move |_| {
            counter.records.fetch_add(1, Ordering::Relaxed);
        })
        .try_map(move |item| shape.check(item));
    let values = futures_util::StreamExt::map(items, |item| {
        let item = item?;
        let key = message_id(item.position(), &item.value().to_json());
        Ok(Acked::new(item.into_value(), Ack::none(), Some(key)))
    });
    Ok(AckPipeline::from_stream(values, AckLedger::new()))
}

/// The message id of a record published from a file or a query: where it was read and a
/// hash of its content, so that publishing the same input again stores nothing twice (within
/// the stream's duplicate window), while a record that changed is stored anew.
pub(crate) fn message_id(position: &impl std::fmt::Display, json: &[u8]) -> Arc<str> {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    json.hash(&mut hasher);
    Arc::from(format!("{position} #{:016x}", hasher.finish()))
}

/// A broker as a source of message payloads.
async fn source(
    endpoint: &Endpoint,
    idle: Duration,
    ack_wait: Duration,
    window: NonZeroU16,
) -> Result<AckPipeline<Bytes>> {
    match endpoint {
        Endpoint::Nats { server, path } => {
            let [stream, consumer] = path.as_slice() else {
                bail!("a nats:// input names a stream and a durable consumer: nats://HOST:PORT/STREAM/CONSUMER");
            };
            let client = async_nats::connect(server.as_str())
                .await
                .with_context(|| format!("connecting to nats://{server}"))?;
            Ok(
                JetStreamSource::new(client, stream.as_str(), consumer.as_str())
                    .window(NonZeroUsize::from(window))
                    .ack_wait(ack_wait)
                    .stop_when_idle(idle)
                    .bytes()
                    .await?,
            )
        }
        Endpoint::Table { .. } => bail!("a table is an output of `vortex convert`, not an input"),
        Endpoint::Amqp { url, queue, .. } => {
            let queue = queue
                .as_deref()
                .context("an amqp:// input names its queue: amqp://…/VHOST?queue=NAME")?;
            Ok(AmqpSource::new(url.as_str(), queue)
                .prefetch(usize::from(window.get()))
                .stop_when_idle(idle)
                .bytes()
                .await?)
        }
    }
}

/// A record as a table's row: its fields named by `columns`, as text (the database casts
/// each to its column's type); a field it lacks, or a JSON `null`, is `NULL`.
pub(crate) fn row(record: &Record, columns: &[String]) -> Vec<Value> {
    columns
        .iter()
        .map(|name| match record.get(name) {
            Some(Field::Json(raw)) if raw.get() == "null" => Value::Null,
            Some(field) => Value::Text(field.text().into_owned()),
            None => Value::Null,
        })
        .collect()
}

/// A record as a JSON value, for a broker.
fn to_json(record: &Record) -> Result<Box<RawValue>, BoxError> {
    Ok(RawValue::from_string(String::from_utf8(record.to_json())?)?)
}

/// Publishes the values to the broker `endpoint` names.
pub(crate) async fn publish_to<T>(values: AckPipeline<T>, endpoint: &Endpoint) -> Result<AckReport>
where
    T: serde::Serialize + Send + 'static,
{
    match endpoint {
        Endpoint::Table { .. } => bail!("a table is written by `vortex convert`, not published to"),
        Endpoint::Nats { server, path } => {
            let [subject] = path.as_slice() else {
                bail!("a nats:// output names one subject: nats://HOST:PORT/SUBJECT");
            };
            let client = async_nats::connect(server.as_str())
                .await
                .with_context(|| format!("connecting to nats://{server}"))?;
            Ok(values
                .publish(JetStreamSink::new(client, subject.as_str()))
                .await?)
        }
        Endpoint::Amqp {
            url,
            exchange,
            routing_key,
            ..
        } => {
            let key = routing_key.as_deref().context(
                "an amqp:// output names its routing key: amqp://…/VHOST?routing_key=KEY",
            )?;
            Ok(values
                .publish(AmqpSink::new(url.as_str(), exchange.as_str(), key))
                .await?)
        }
    }
}

/// A prefix for the part files of this run, so that a later run adds its own beside them.
fn run_prefix() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{ms}")
}

/// Writes one part file of JSON Lines: to a temporary name, synced, then renamed into place
/// (the part's commit point: its messages are acknowledged after this returns).
async fn write_part(path: PathBuf, records: Vec<Record>) -> Result<(), Error> {
    let work = move || -> std::io::Result<()> {
        use std::io::Write as _;
        let tmp = temporary(&path);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        for record in &records {
            file.write_all(&record.to_json())?;
            file.write_all(b"\n")?;
        }
        let file = file
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| {
            Error::new(ErrorKind::Internal, "convert: part file").with_message(e.to_string())
        })?
        .map_err(|e| Error::io("convert: part file", e))
}

/// The name a part is written under before it is complete.
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_name_their_parts() {
        assert_eq!(
            Endpoint::parse("nats://127.0.0.1:4222/ORDERS/loader").unwrap(),
            Some(Endpoint::Nats {
                server: "127.0.0.1:4222".into(),
                path: vec!["ORDERS".into(), "loader".into()],
            })
        );
        assert_eq!(
            Endpoint::parse("amqp://guest:guest@127.0.0.1:5672/%2f?queue=orders&heartbeat=10")
                .unwrap(),
            Some(Endpoint::Amqp {
                url: "amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=10".into(),
                queue: Some("orders".into()),
                exchange: String::new(),
                routing_key: None,
            })
        );
        assert_eq!(Endpoint::parse("orders.csv").unwrap(), None);
        let named = Endpoint::parse("amqp://guest:secret@h/%2f?queue=q")
            .unwrap()
            .unwrap();
        assert!(!named.name().contains("secret"));
    }
}
