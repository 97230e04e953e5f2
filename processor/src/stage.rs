//! The stage loop: observations in, entity events (and dead letters) out,
//! at least once.

use crate::{ProcessorConfig, metrics, process};
use eventlog::lag::LagGauge;
use eventlog::{EventLog, LogError, Reader, Record};
use proto::{
    DeadLetter, DecodeError, LocationOutcome, Observation, ProcessingError, Versioned, topics,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// The name this stage signs dead letters with.
pub const STAGE: &str = "processor";
const POLL_TIMEOUT: Duration = Duration::from_millis(200);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// One wait for delivery, between looks at the stop flag.
const FLUSH_STEP: Duration = Duration::from_secs(1);
/// Consecutive failed polls after which the stage gives up.
const MAX_POLL_FAILURES: u32 = 50;

/// Why the stage stopped other than by request.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("event log: {0}")]
    Log(#[from] LogError),
}

/// Runs the processor until `stop` is set: reads observations as consumer
/// group `cfg.group`, appends one entity event per observation (keyed by the
/// location) and a dead letter for every message it cannot process or whose
/// outcome has errors, flushes, then commits the batch. Bad input never
/// stops the loop; only the log failing does.
pub fn run(
    log: Arc<dyn EventLog>,
    cfg: &ProcessorConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), ProcessorError> {
    metrics::describe();
    let mut reader = log.subscribe(topics::OBSERVATIONS, &cfg.group)?;
    tracing::info!(group = %cfg.group, log = %log.describe(), "processor started");
    let mut lag = LagGauge::new(STAGE, topics::OBSERVATIONS);
    let mut poll_failures = 0u32;
    while !stop.load(Ordering::Relaxed) {
        lag.tick(log.as_ref(), reader.as_mut());
        let records = match reader.poll(POLL_TIMEOUT) {
            Ok(records) => {
                poll_failures = 0;
                records
            }
            Err(e) => {
                poll_failures += 1;
                tracing::warn!(error = %e, attempt = poll_failures, "polling observations failed");
                if poll_failures >= MAX_POLL_FAILURES {
                    return Err(e.into());
                }
                std::thread::sleep(POLL_TIMEOUT);
                continue;
            }
        };
        if records.is_empty() {
            continue;
        }
        process_batch(log.as_ref(), reader.as_mut(), cfg, &records, &stop)?;
    }
    tracing::info!("processor stopped");
    Ok(())
}

fn process_batch(
    log: &dyn EventLog,
    reader: &mut dyn Reader,
    cfg: &ProcessorConfig,
    records: &[Record],
    stop: &AtomicBool,
) -> Result<(), ProcessorError> {
    let mut next: BTreeMap<u32, i64> = BTreeMap::new();
    for record in records {
        if stop.load(Ordering::Relaxed) {
            // Uncommitted: processed again by whoever owns it next (what
            // was appended already is harmless twice).
            tracing::info!("stopping: the rest of the batch is left uncommitted");
            return Ok(());
        }
        // Held until this record's event is appended (see
        // `eventlog::large`); at a stop, the rest is left uncommitted.
        let Some(_large) = eventlog::large::permit(record.value.len(), stop) else {
            return Ok(());
        };
        handle(log, cfg, record)?;
        let offset = next.entry(record.partition).or_insert(record.next);
        *offset = (*offset).max(record.next);
    }
    // A broker away is waited out (the producer keeps what is queued and
    // delivers it when the broker is back); at shutdown the batch is
    // abandoned uncommitted and processed again by whoever owns it next.
    let mut waited = Duration::ZERO;
    loop {
        match log.flush(FLUSH_STEP) {
            Ok(()) => break,
            Err(e) if matches!(e, LogError::Timeout(..)) => {
                waited += FLUSH_STEP;
                if stop.load(Ordering::Relaxed) {
                    tracing::warn!(error = %e, "shutting down with a batch undelivered; it will be processed again");
                    return Ok(());
                }
                if waited >= FLUSH_TIMEOUT && waited.as_secs().is_multiple_of(30) {
                    tracing::warn!(error = %e, waited_secs = waited.as_secs(), "entity events still undelivered; waiting for the broker");
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let offsets: Vec<(u32, i64)> = next.into_iter().collect();
    if let Err(e) = reader.commit(&offsets) {
        // Not fatal: the records are processed again later (at least once).
        tracing::warn!(error = %e, ?offsets, "committing observation offsets failed");
    }
    Ok(())
}

fn dead_letter(record: &Record, reason: String, errors: Vec<ProcessingError>) -> DeadLetter {
    DeadLetter {
        event_id: Uuid::now_v7(),
        stage: STAGE.to_string(),
        at: chrono::Utc::now(),
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        key: String::from_utf8_lossy(&record.key).into_owned(),
        reason,
        errors,
    }
}

fn send_dead_letter(
    log: &dyn EventLog,
    record: &Record,
    letter: &DeadLetter,
) -> Result<(), LogError> {
    log.append(topics::DLQ, &record.key, &letter.encode())?;
    metrics::dead_letter();
    Ok(())
}

/// Processes one record; only an error of the log itself is returned.
fn handle(log: &dyn EventLog, cfg: &ProcessorConfig, record: &Record) -> Result<(), LogError> {
    let mut obs = match Observation::decode(&record.value) {
        Ok(obs) => obs,
        Err(e) => {
            if matches!(e, DecodeError::UnknownVersion { .. }) {
                metrics::unknown_version();
                tracing::warn!(partition = record.partition, offset = record.offset, error = %e, "skipping an observation of unknown version");
            } else {
                tracing::warn!(partition = record.partition, offset = record.offset, error = %e, "dead-lettering a malformed observation");
            }
            return send_dead_letter(log, record, &dead_letter(record, e.to_string(), Vec::new()));
        }
    };
    let span = tracing::info_span!(
        "process_observation",
        location = %obs.location,
        partition = record.partition,
        offset = record.offset
    );
    let _entered = span.enter();
    metrics::observation();
    let encoded = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        process::process_encoded(&obs, cfg)
    })) {
        Ok(encoded) => encoded,
        Err(_) => {
            tracing::error!("processing the observation panicked; dead-lettering it");
            return send_dead_letter(
                log,
                record,
                &dead_letter(
                    record,
                    "the processor panicked on this observation".into(),
                    Vec::new(),
                ),
            );
        }
    };
    let process::Encoded {
        event_id,
        bytes,
        mut entities,
        mut errors,
    } = encoded;
    // The content is done with: freed before the event is written.
    let removed = matches!(obs.content, proto::ObservedContent::Removed);
    obs.content = proto::ObservedContent::Removed;
    match log.append_owned(topics::ENTITIES, obs.location.as_str().as_bytes(), bytes) {
        Ok(()) => {}
        // What the location yields cannot travel in one message: the
        // location reports that as its error instead (never a silent drop,
        // never a stopped stage).
        Err(e @ LogError::TooLarge { .. }) => {
            tracing::warn!(error = %e, "entity event too large for the log");
            entities = 0;
            errors = vec![ProcessingError {
                location: obs.location.clone(),
                kind: proto::ErrorKind::TooLarge,
                message: format!("what this location yields cannot be published: {e}"),
                document: None,
                line: None,
                column: None,
                entity: None,
            }];
            let event = process::event_of(
                &obs,
                event_id,
                LocationOutcome::Processed {
                    entities: Vec::new(),
                    errors: errors.clone(),
                },
            );
            log.append(
                topics::ENTITIES,
                obs.location.as_str().as_bytes(),
                &event.encode(),
            )?;
        }
        Err(e) => return Err(e),
    }
    if !removed {
        metrics::entities(entities);
        for e in &errors {
            metrics::error(e.kind);
        }
        tracing::debug!(entities, errors = errors.len(), "observation processed");
        if !errors.is_empty() {
            let reason = format!("the location yielded {} error(s)", errors.len());
            send_dead_letter(log, record, &dead_letter(record, reason, errors))?;
        }
    }
    Ok(())
}
