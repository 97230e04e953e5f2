//! Exports for warehouses: the catalog (as it stands or as of an instant),
//! its relations, and the change feed, as JSON Lines or CSV, written row by
//! row to any `Write` (an HTTP body, a file), so memory stays flat.
//!
//! The schemas are stable; a column is only ever added at the end.
//!
//! | what | columns |
//! |---|---|
//! | `entities` | entity_ref, kind, namespace, name, uid, title, type, lifecycle, owner, system, domain, tags (`;`-joined), location; JSON Lines: the served entity |
//! | `relations` | source_ref, type, target_ref |
//! | `history` | event_id, event_at, event_type, entity_ref, location_ref, source, log_event_id, by |

use crate::feed::FeedRecord;
use crate::read::Catalog;
use crate::store::StoreError;
use serde_json::{Value, json};
use std::io::Write;

/// What is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Entities,
    Relations,
    History,
}

impl What {
    pub const ALL: [What; 3] = [What::Entities, What::Relations, What::History];

    pub fn name(self) -> &'static str {
        match self {
            What::Entities => "entities",
            What::Relations => "relations",
            What::History => "history",
        }
    }

    pub fn parse(s: &str) -> Option<What> {
        What::ALL.into_iter().find(|w| w.name() == s)
    }
}

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "jsonl" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

const ENTITY_COLUMNS: [&str; 13] = [
    "entity_ref",
    "kind",
    "namespace",
    "name",
    "uid",
    "title",
    "type",
    "lifecycle",
    "owner",
    "system",
    "domain",
    "tags",
    "location",
];
const RELATION_COLUMNS: [&str; 3] = ["source_ref", "type", "target_ref"];
const HISTORY_COLUMNS: [&str; 8] = [
    "event_id",
    "event_at",
    "event_type",
    "entity_ref",
    "location_ref",
    "source",
    "log_event_id",
    "by",
];

/// Writes one CSV row (RFC 4180 quoting).
fn csv_row(out: &mut dyn Write, cells: &[&str]) -> std::io::Result<()> {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        if c.contains([',', '"', '\n', '\r']) {
            write!(out, "\"{}\"", c.replace('"', "\"\""))?;
        } else {
            out.write_all(c.as_bytes())?;
        }
    }
    out.write_all(b"\n")
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Writes `what` of `catalog` to `out`. Returns the rows written.
pub fn export(
    catalog: &Catalog,
    what: What,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let mut rows = 0u64;
    if format == Format::Csv {
        let header: &[&str] = match what {
            What::Entities => &ENTITY_COLUMNS,
            What::Relations => &RELATION_COLUMNS,
            What::History => &HISTORY_COLUMNS,
        };
        csv_row(out, header)?;
    }
    if what == What::History {
        let mut after = 0;
        loop {
            let (entries, last) = catalog.feed(after, 10_000, usize::MAX, &mut |_| true)?;
            if entries.is_empty() {
                break;
            }
            for e in entries {
                history_row(e.seq, &e.record, format, out)?;
                rows += 1;
            }
            after = last;
        }
        return Ok(rows);
    }
    let mut after: Option<String> = None;
    loop {
        let batch = catalog.entities_after(after.as_deref(), 1000)?;
        let Some((last, _)) = batch.last() else { break };
        after = Some(last.clone());
        let n = batch.len();
        for (r, stored) in batch {
            let v: Value = serde_json::from_slice(&stored).map_err(|e| StoreError::Corrupt {
                key: r.clone(),
                reason: e.to_string(),
            })?;
            let me = format!(
                "{}:{}/{}",
                str_at(&v, "/kind").to_ascii_lowercase(),
                str_at(&v, "/metadata/namespace"),
                str_at(&v, "/metadata/name")
            );
            match what {
                What::Entities => {
                    match format {
                        Format::Jsonl => {
                            out.write_all(&stored)?;
                            out.write_all(b"\n")?;
                        }
                        Format::Csv => {
                            let tags: Vec<&str> = v
                                .pointer("/metadata/tags")
                                .and_then(Value::as_array)
                                .map(|t| t.iter().filter_map(Value::as_str).collect())
                                .unwrap_or_default();
                            let owner = crate::adoption::related(&v, "ownedBy").join(";");
                            let part_of = crate::adoption::related(&v, "partOf");
                            let of_kind = |k: &str| {
                                part_of
                                    .iter()
                                    .filter(|t| t.starts_with(k))
                                    .cloned()
                                    .collect::<Vec<_>>()
                                    .join(";")
                            };
                            csv_row(
                                out,
                                &[
                                    &me,
                                    str_at(&v, "/kind"),
                                    str_at(&v, "/metadata/namespace"),
                                    str_at(&v, "/metadata/name"),
                                    str_at(&v, "/metadata/uid"),
                                    str_at(&v, "/metadata/title"),
                                    str_at(&v, "/spec/type"),
                                    str_at(&v, "/spec/lifecycle"),
                                    &owner,
                                    &of_kind("system:"),
                                    &of_kind("domain:"),
                                    &tags.join(";"),
                                    str_at(
                                        &v,
                                        "/metadata/annotations/backstage.io~1managed-by-location",
                                    ),
                                ],
                            )?;
                        }
                    }
                    rows += 1;
                }
                What::Relations => {
                    for rel in v
                        .get("relations")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let ty = str_at(rel, "/type");
                        let target = str_at(rel, "/targetRef");
                        match format {
                            Format::Jsonl => {
                                serde_json::to_writer(
                                    &mut *out,
                                    &json!({"source_ref": me, "type": ty, "target_ref": target}),
                                )
                                .map_err(std::io::Error::other)?;
                                out.write_all(b"\n")?;
                            }
                            Format::Csv => csv_row(out, &[&me, ty, target])?,
                        }
                        rows += 1;
                    }
                }
                What::History => unreachable!("history is written above"),
            }
        }
        if n < 1000 {
            break;
        }
    }
    Ok(rows)
}

fn history_row(
    seq: u64,
    r: &FeedRecord,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), ExportError> {
    let at = r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let seq = seq.to_string();
    let log_event = r.event_id.to_string();
    let entity = r.entity.as_deref().unwrap_or("");
    let by = r.by.as_deref().unwrap_or("");
    match format {
        Format::Jsonl => {
            serde_json::to_writer(
                &mut *out,
                &json!({
                    "event_id": seq, "event_at": at, "event_type": r.kind.as_str(),
                    "entity_ref": r.entity, "location_ref": r.location.as_str(),
                    "source": r.source.as_str(), "log_event_id": log_event, "by": r.by,
                }),
            )
            .map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
        }
        Format::Csv => csv_row(
            out,
            &[
                &seq,
                &at,
                r.kind.as_str(),
                entity,
                r.location.as_str(),
                r.source.as_str(),
                &log_event,
                by,
            ],
        )?,
    }
    Ok(())
}
