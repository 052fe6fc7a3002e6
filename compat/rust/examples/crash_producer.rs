//! An idempotent rdkafka producer for the crash test (`compat/python/test_crash.py`).
//!
//! Usage: `crash_producer BOOTSTRAP TOPIC NAME ACKED_FILE RATE_PER_S`
//!
//! Produces keyed records whose values are `NAME-<9-digit sequence>` at about
//! `RATE_PER_S` records a second, for as long as stdin stays open, while the broker
//! is killed and restarted under it. Every acknowledged record is appended to
//! `ACKED_FILE` as `partition<TAB>offset<TAB>value`, one write per line, as its
//! delivery report arrives, so a line on disk always means "the broker said yes".
//! When stdin reaches end of file the producer stops sending, waits (bounded) for
//! the records still in flight and prints one summary line:
//! `NAME sent=S acked=A failed=F`.
//!
//! Exits non-zero if librdkafka raises a fatal error (the idempotent producer
//! cannot go on), printing the error: that is a broker bug the test must report.

use std::fs::File;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

/// Long enough that no record times out while the broker is down between restarts.
const MESSAGE_TIMEOUT_MS: &str = "300000";
/// How long the producer may take to deliver what is in flight once told to stop.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// Failed deliveries printed in full; later ones are only counted.
const FAILURES_PRINTED: u64 = 20;

/// Writes delivery reports to the acknowledged-records file and counts outcomes.
struct Deliveries {
    acked_file: Mutex<File>,
    acked: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Deliveries {
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("rdkafka error: {error}: {reason}");
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
                let line = format!("{}\t{}\t{}\n", message.partition(), message.offset(), value);
                let mut file = self
                    .acked_file
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                // One write per line, unbuffered: a killed test still finds every
                // acknowledged record that was reported before the kill.
                if let Err(error) = file.write_all(line.as_bytes()) {
                    eprintln!("cannot record acknowledged {value}: {error}");
                    std::process::exit(3);
                }
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
                if failed <= FAILURES_PRINTED {
                    let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
                    eprintln!("delivery failed for {value}: {error}");
                }
            }
        }
    }
}

struct Args {
    bootstrap: String,
    topic: String,
    name: String,
    acked_path: String,
    rate_per_s: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, name, acked_path, rate] = args.as_slice() else {
        bail!("usage: crash_producer BOOTSTRAP TOPIC NAME ACKED_FILE RATE_PER_S");
    };
    Ok(Args {
        bootstrap: bootstrap.clone(),
        topic: topic.clone(),
        name: name.clone(),
        acked_path: acked_path.clone(),
        rate_per_s: rate.parse().context("RATE_PER_S")?,
    })
}

/// A flag set once stdin reaches end of file (or fails): the test's "stop" signal.
fn stdin_closed() -> Arc<AtomicBool> {
    let closed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&closed);
    thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        flag.store(true, Ordering::SeqCst);
    });
    closed
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let context = Deliveries {
        acked_file: Mutex::new(File::create(&args.acked_path).context("ACKED_FILE")?),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    };
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("client.id", &args.name)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("retries", "2147483647")
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS)
        .set("retry.backoff.ms", "50")
        .set("retry.backoff.max.ms", "500")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("linger.ms", "5")
        .create_with_context(context)?;

    let stop = stdin_closed();
    let start = Instant::now();
    let mut sent: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        if let Some(fatal) = producer.client().fatal_error() {
            bail!("{} fatal error: {:?}: {}", args.name, fatal.0, fatal.1);
        }
        let due = start.elapsed().as_millis() as u64 * args.rate_per_s / 1000;
        if sent >= due {
            thread::sleep(Duration::from_millis(2));
            continue;
        }
        let value = format!("{}-{sent:09}", args.name);
        let key = format!("key-{}", sent % 1000);
        let record = BaseRecord::to(&args.topic).key(&key).payload(&value);
        match producer.send(record) {
            Ok(()) => sent += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                thread::sleep(Duration::from_millis(10));
            }
            Err((error, _)) => bail!("{} cannot enqueue {value}: {error}", args.name),
        }
    }

    let flushed = producer.flush(FLUSH_TIMEOUT);
    if let Some(fatal) = producer.client().fatal_error() {
        bail!("{} fatal error: {:?}: {}", args.name, fatal.0, fatal.1);
    }
    let context = producer.context();
    println!(
        "{} sent={sent} acked={} failed={} in_flight={}",
        args.name,
        context.acked.load(Ordering::SeqCst),
        context.failed.load(Ordering::SeqCst),
        producer.in_flight_count()
    );
    if let Err(error) = flushed {
        eprintln!("{} flush did not finish: {error}", args.name);
    }
    Ok(())
}
