//! Exports for warehouses: the catalog (as it stands or as of an instant),
//! its relations, the change feed and the scorecard results, as JSON
//! Lines, CSV or Parquet, written row by row to any `Write` (an HTTP body,
//! a file), so memory stays flat (Parquet holds one row group, at most
//! [`ROW_GROUP`] rows, before writing it).
//!
//! The schemas are stable; a column is only ever added at the end. Types
//! are Parquet's; CSV writes lists `;`-joined and times as RFC 3339, JSON
//! Lines writes lists as arrays, missing values as `null` and times as
//! RFC 3339 strings.
//!
//! Entities are named by their ref key, `kind:namespace/name` in lower case,
//! in every export, so that they join.
//!
//! | what | columns |
//! |---|---|
//! | `entities` | entity_ref, kind, namespace, name, uid, title, type, lifecycle, owner, system, domain (`;`-joined refs), tags (list), location; JSON Lines: the served entity itself |
//! | `relations` | source_ref, type, target_ref |
//! | `history` | event_id, event_at (timestamp, ms, UTC), event_type, entity_ref, location_ref, source, log_event_id, by |
//! | `scorecard-results` | scorecard, entity_ref, level, score (int64), failing (list), exempt (list), owners (list: the owner and its ancestor groups) |

use crate::feed::FeedRecord;
use crate::read::Catalog;
use crate::store::StoreError;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::io::Write;

/// What is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Entities,
    Relations,
    History,
    ScorecardResults,
}

impl What {
    pub const ALL: [What; 4] = [
        What::Entities,
        What::Relations,
        What::History,
        What::ScorecardResults,
    ];

    pub fn name(self) -> &'static str {
        match self {
            What::Entities => "entities",
            What::Relations => "relations",
            What::History => "history",
            What::ScorecardResults => "scorecard-results",
        }
    }

    pub fn parse(s: &str) -> Option<What> {
        What::ALL.into_iter().find(|w| w.name() == s)
    }

    /// The columns of this export, in order.
    pub fn columns(self) -> &'static [Column] {
        match self {
            What::Entities => &ENTITY_COLUMNS,
            What::Relations => &RELATION_COLUMNS,
            What::History => &HISTORY_COLUMNS,
            What::ScorecardResults => &RESULT_COLUMNS,
        }
    }
}

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Parquet,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Jsonl, Format::Csv, Format::Parquet];

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.extension() == s)
    }

    /// The format's name, which is also the file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Parquet => "application/vnd.apache.parquet",
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
    #[error("cannot encode the export as Parquet: {0}")]
    Parquet(String),
}

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A string, missing when empty.
    Text,
    Int,
    /// Milliseconds since the epoch, UTC.
    Time,
    /// A list of strings.
    List,
}

/// One column of an export's schema.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: Type,
}

const fn text(name: &'static str) -> Column {
    Column {
        name,
        ty: Type::Text,
    }
}

const fn typed(name: &'static str, ty: Type) -> Column {
    Column { name, ty }
}

const ENTITY_COLUMNS: [Column; 13] = [
    text("entity_ref"),
    text("kind"),
    text("namespace"),
    text("name"),
    text("uid"),
    text("title"),
    text("type"),
    text("lifecycle"),
    text("owner"),
    text("system"),
    text("domain"),
    typed("tags", Type::List),
    text("location"),
];
const RELATION_COLUMNS: [Column; 3] = [text("source_ref"), text("type"), text("target_ref")];
const HISTORY_COLUMNS: [Column; 8] = [
    text("event_id"),
    typed("event_at", Type::Time),
    text("event_type"),
    text("entity_ref"),
    text("location_ref"),
    text("source"),
    text("log_event_id"),
    text("by"),
];
const RESULT_COLUMNS: [Column; 7] = [
    text("scorecard"),
    text("entity_ref"),
    text("level"),
    typed("score", Type::Int),
    typed("failing", Type::List),
    typed("exempt", Type::List),
    typed("owners", Type::List),
];

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(Option<String>),
    Int(i64),
    Time(i64),
    List(Vec<String>),
}

impl Cell {
    fn text(s: &str) -> Cell {
        Cell::Text((!s.is_empty()).then(|| s.to_owned()))
    }
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Writes one CSV row (RFC 4180 quoting).
fn csv_row<'c>(
    out: &mut dyn Write,
    cells: impl Iterator<Item = std::borrow::Cow<'c, str>>,
) -> std::io::Result<()> {
    for (i, c) in cells.enumerate() {
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

/// Rows to the output in the chosen format.
struct Rows<'w> {
    columns: &'static [Column],
    format: Format,
    out: Output<'w>,
    written: u64,
}

enum Output<'w> {
    Plain(&'w mut (dyn Write + Send)),
    #[cfg(feature = "parquet")]
    Parquet(Box<parquet_rows::Writer<'w>>),
}

impl<'w> Rows<'w> {
    fn new(
        what: What,
        format: Format,
        out: &'w mut (dyn Write + Send),
    ) -> Result<Rows<'w>, ExportError> {
        let columns = what.columns();
        match format {
            Format::Csv => csv_row(&mut *out, columns.iter().map(|c| c.name.into()))?,
            Format::Jsonl => {}
            #[cfg(feature = "parquet")]
            Format::Parquet => {
                return Ok(Rows {
                    columns,
                    format,
                    out: Output::Parquet(Box::new(parquet_rows::Writer::new(columns, out)?)),
                    written: 0,
                });
            }
            #[cfg(not(feature = "parquet"))]
            Format::Parquet => {
                return Err(ExportError::Parquet(
                    "this build has no Parquet writer".into(),
                ));
            }
        }
        Ok(Rows {
            columns,
            format,
            out: Output::Plain(out),
            written: 0,
        })
    }

    fn row(&mut self, cells: Vec<Cell>) -> Result<(), ExportError> {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.written += 1;
        let out = match &mut self.out {
            Output::Plain(out) => out,
            #[cfg(feature = "parquet")]
            Output::Parquet(p) => return p.push(cells),
        };
        if self.format == Format::Csv {
            csv_row(
                *out,
                cells.iter().map(|c| match c {
                    Cell::Text(t) => t.as_deref().unwrap_or("").into(),
                    Cell::Int(i) => i.to_string().into(),
                    Cell::Time(t) => rfc3339(*t).into(),
                    Cell::List(l) => l.join(";").into(),
                }),
            )?;
            return Ok(());
        }
        let mut obj = Map::new();
        for (col, cell) in self.columns.iter().zip(cells) {
            let v = match cell {
                Cell::Text(t) => t.map_or(Value::Null, Value::String),
                Cell::Int(i) => Value::from(i),
                Cell::Time(t) => Value::String(rfc3339(t)),
                Cell::List(l) => Value::from(l),
            };
            obj.insert(col.name.to_owned(), v);
        }
        serde_json::to_writer(&mut **out, &obj).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
        Ok(())
    }

    /// A line written as it is (JSON Lines of served entities).
    fn raw_line(&mut self, line: &[u8]) -> Result<(), ExportError> {
        self.written += 1;
        match &mut self.out {
            Output::Plain(out) => {
                out.write_all(line)?;
                out.write_all(b"\n")?;
            }
            #[cfg(feature = "parquet")]
            Output::Parquet(_) => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<u64, ExportError> {
        #[cfg(feature = "parquet")]
        if let Output::Parquet(p) = self.out {
            p.finish()?;
        }
        Ok(self.written)
    }
}

/// Rows per Parquet row group: what the writer holds in memory at most.
pub const ROW_GROUP: usize = 64 * 1024;

#[cfg(feature = "parquet")]
mod parquet_rows {
    use super::{Cell, Column, ExportError, ROW_GROUP, Type};
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
    use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;
    use std::io::Write;
    use std::sync::Arc;

    /// Rows gathered into record batches of [`BATCH`] rows.
    const BATCH: usize = 8192;

    pub(super) struct Writer<'w> {
        schema: SchemaRef,
        rows: Vec<Vec<Cell>>,
        writer: ArrowWriter<&'w mut (dyn Write + Send)>,
    }

    fn perr(e: impl std::fmt::Display) -> ExportError {
        ExportError::Parquet(e.to_string())
    }

    pub(super) fn schema(columns: &[Column]) -> SchemaRef {
        Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| match c.ty {
                    Type::Text => Field::new(c.name, DataType::Utf8, true),
                    Type::Int => Field::new(c.name, DataType::Int64, false),
                    Type::Time => Field::new(
                        c.name,
                        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                        false,
                    ),
                    Type::List => Field::new(
                        c.name,
                        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                        false,
                    ),
                })
                .collect::<Vec<_>>(),
        ))
    }

    impl<'w> Writer<'w> {
        pub(super) fn new(
            columns: &[Column],
            out: &'w mut (dyn Write + Send),
        ) -> Result<Writer<'w>, ExportError> {
            let schema = schema(columns);
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(ROW_GROUP))
                .build();
            let writer = ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(perr)?;
            Ok(Writer {
                schema,
                rows: Vec::with_capacity(BATCH),
                writer,
            })
        }

        pub(super) fn push(&mut self, cells: Vec<Cell>) -> Result<(), ExportError> {
            self.rows.push(cells);
            if self.rows.len() >= BATCH {
                self.flush()?;
            }
            Ok(())
        }

        fn flush(&mut self) -> Result<(), ExportError> {
            if self.rows.is_empty() {
                return Ok(());
            }
            let rows = std::mem::take(&mut self.rows);
            let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
            for (i, field) in self.schema.fields().iter().enumerate() {
                let array: ArrayRef = match field.data_type() {
                    DataType::Utf8 => Arc::new(
                        rows.iter()
                            .map(|r| match &r[i] {
                                Cell::Text(t) => t.as_deref(),
                                _ => None,
                            })
                            .collect::<StringArray>(),
                    ),
                    DataType::Int64 => Arc::new(
                        rows.iter()
                            .map(|r| match &r[i] {
                                Cell::Int(v) => *v,
                                _ => 0,
                            })
                            .collect::<Int64Array>(),
                    ),
                    DataType::Timestamp(..) => Arc::new(
                        TimestampMillisecondArray::from(
                            rows.iter()
                                .map(|r| match &r[i] {
                                    Cell::Time(v) => *v,
                                    _ => 0,
                                })
                                .collect::<Vec<i64>>(),
                        )
                        .with_timezone("UTC"),
                    ),
                    _ => {
                        let mut b = ListBuilder::new(StringBuilder::new());
                        for r in &rows {
                            if let Cell::List(items) = &r[i] {
                                for item in items {
                                    b.values().append_value(item);
                                }
                            }
                            b.append(true);
                        }
                        Arc::new(b.finish())
                    }
                };
                arrays.push(array);
            }
            let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(perr)?;
            self.writer.write(&batch).map_err(perr)?;
            self.rows = rows;
            self.rows.clear();
            Ok(())
        }

        pub(super) fn finish(mut self) -> Result<(), ExportError> {
            self.flush()?;
            let out = self.writer.into_inner().map_err(perr)?;
            out.flush()?;
            Ok(())
        }
    }
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Writes `what` of `catalog` to `out`. Returns the rows written.
pub fn export(
    catalog: &Catalog,
    what: What,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<u64, ExportError> {
    let mut rows = Rows::new(what, format, out)?;
    match what {
        What::History => history(catalog, &mut rows)?,
        What::ScorecardResults => scorecard_results(catalog, &mut rows)?,
        What::Entities | What::Relations => entities(catalog, what, &mut rows)?,
    }
    rows.finish()
}

fn history(catalog: &Catalog, rows: &mut Rows) -> Result<(), ExportError> {
    let mut after = 0;
    loop {
        let (entries, last) = catalog.feed(after, 10_000, usize::MAX, &mut |_| true)?;
        if entries.is_empty() {
            return Ok(());
        }
        for e in entries {
            rows.row(history_row(e.seq, &e.record))?;
        }
        after = last;
    }
}

fn history_row(seq: u64, r: &FeedRecord) -> Vec<Cell> {
    vec![
        Cell::Text(Some(seq.to_string())),
        Cell::Time(r.at.timestamp_millis()),
        Cell::text(r.kind.as_str()),
        Cell::Text(r.entity.clone()),
        Cell::text(r.location.as_str()),
        Cell::text(r.source.as_str()),
        Cell::Text(Some(r.event_id.to_string())),
        Cell::Text(r.by.clone()),
    ]
}

fn scorecard_results(catalog: &Catalog, rows: &mut Rows) -> Result<(), ExportError> {
    for (_, def) in catalog.scorecard_definitions()? {
        let mut cursor: Option<String> = None;
        loop {
            let (items, next) =
                catalog.scorecard_results(&def, None, None, cursor.as_deref(), 1000)?;
            for i in items {
                rows.row(vec![
                    Cell::text(&def.id),
                    Cell::Text(Some(i.entity_ref)),
                    Cell::Text(i.level),
                    Cell::Int(i64::from(i.score)),
                    Cell::List(i.failing),
                    Cell::List(i.exempt),
                    Cell::List(i.owners),
                ])?;
            }
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
    }
    Ok(())
}

fn entities(catalog: &Catalog, what: What, rows: &mut Rows) -> Result<(), ExportError> {
    let mut after: Option<String> = None;
    loop {
        let batch = catalog.entities_after(after.as_deref(), 1000)?;
        let Some((last, _)) = batch.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        let n = batch.len();
        if what == What::Entities && rows.format == Format::Jsonl {
            for (_, stored) in &batch {
                rows.raw_line(stored)?;
            }
        } else {
            // Rows are made on two threads (reading the JSON is most of
            // the work) and written in order.
            let (first, second) = batch.split_at(n / 2);
            let made = |part: &[(String, Vec<u8>)]| -> Result<Vec<Vec<Cell>>, StoreError> {
                let mut out = Vec::new();
                for (r, stored) in part {
                    entity_rows(what, r, stored, &mut out)?;
                }
                Ok(out)
            };
            let (a, b) = std::thread::scope(|scope| {
                let other = scope.spawn(|| made(second));
                let a = made(first);
                (
                    a,
                    other
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                )
            });
            for row in a?.into_iter().chain(b?) {
                rows.row(row)?;
            }
        }
        if n < 1000 {
            return Ok(());
        }
    }
}

/// The parts of a served entity the entity and relation exports read,
/// borrowed from its JSON where no unescaping is needed. Anything shaped
/// otherwise (a title that is not a string, say) is read as a `Value`.
#[derive(serde::Deserialize)]
struct Lean<'a> {
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    metadata: LeanMeta<'a>,
    #[serde(borrow, default)]
    spec: Option<LeanSpec<'a>>,
    #[serde(borrow, default)]
    relations: Vec<LeanRelation<'a>>,
}

#[derive(serde::Deserialize, Default)]
struct LeanMeta<'a> {
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    title: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tags: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    annotations: Option<LeanAnnotations<'a>>,
}

#[derive(serde::Deserialize)]
struct LeanAnnotations<'a> {
    #[serde(borrow, default, rename = "backstage.io/managed-by-location")]
    managed_by: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct LeanSpec<'a> {
    #[serde(borrow, default, rename = "type")]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    lifecycle: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct LeanRelation<'a> {
    #[serde(borrow, default, rename = "type")]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "targetRef")]
    target: Option<Cow<'a, str>>,
}

/// The rows of one served entity: one for the entity export, one per
/// relation for the relations export.
fn entity_rows(
    what: What,
    r: &str,
    stored: &[u8],
    out: &mut Vec<Vec<Cell>>,
) -> Result<(), StoreError> {
    let Ok(lean) = serde_json::from_slice::<Lean>(stored) else {
        return entity_rows_of_value(what, r, stored, out);
    };
    // The ref key (lower case), as every other export and the relations'
    // targets name entities, so that they join.
    if what == What::Relations {
        for rel in &lean.relations {
            out.push(vec![
                Cell::text(r),
                Cell::text(rel.ty.as_deref().unwrap_or("")),
                Cell::text(rel.target.as_deref().unwrap_or("")),
            ]);
        }
        return Ok(());
    }
    let related = |ty: &str, prefix: &str| -> Vec<String> {
        lean.relations
            .iter()
            .filter(|rel| rel.ty.as_deref() == Some(ty))
            .filter_map(|rel| rel.target.as_deref())
            .map(str::to_ascii_lowercase)
            .filter(|t| t.starts_with(prefix))
            .collect()
    };
    let m = &lean.metadata;
    let text = |v: &Option<Cow<'_, str>>| Cell::text(v.as_deref().unwrap_or(""));
    let spec = lean.spec.as_ref();
    out.push(vec![
        Cell::Text(Some(r.to_owned())),
        text(&lean.kind),
        text(&m.namespace),
        text(&m.name),
        text(&m.uid),
        text(&m.title),
        Cell::text(spec.and_then(|s| s.ty.as_deref()).unwrap_or("")),
        Cell::text(spec.and_then(|s| s.lifecycle.as_deref()).unwrap_or("")),
        Cell::text(&related("ownedBy", "").join(";")),
        Cell::text(&related("partOf", "system:").join(";")),
        Cell::text(&related("partOf", "domain:").join(";")),
        Cell::List(m.tags.iter().map(|t| t.to_string()).collect()),
        Cell::text(
            m.annotations
                .as_ref()
                .and_then(|a| a.managed_by.as_deref())
                .unwrap_or(""),
        ),
    ]);
    Ok(())
}

/// [`entity_rows`] through a `Value`, for JSON of any shape.
fn entity_rows_of_value(
    what: What,
    r: &str,
    stored: &[u8],
    out: &mut Vec<Vec<Cell>>,
) -> Result<(), StoreError> {
    let v: Value = serde_json::from_slice(stored).map_err(|e| StoreError::Corrupt {
        key: r.to_owned(),
        reason: e.to_string(),
    })?;
    if what == What::Relations {
        for rel in v
            .get("relations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push(vec![
                Cell::text(r),
                Cell::text(str_at(rel, "/type")),
                Cell::text(str_at(rel, "/targetRef")),
            ]);
        }
        return Ok(());
    }
    let tags = crate::adoption::strings_at(&v, "/metadata/tags");
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
    out.push(vec![
        Cell::Text(Some(r.to_owned())),
        Cell::text(str_at(&v, "/kind")),
        Cell::text(str_at(&v, "/metadata/namespace")),
        Cell::text(str_at(&v, "/metadata/name")),
        Cell::text(str_at(&v, "/metadata/uid")),
        Cell::text(str_at(&v, "/metadata/title")),
        Cell::text(str_at(&v, "/spec/type")),
        Cell::text(str_at(&v, "/spec/lifecycle")),
        Cell::text(&owner),
        Cell::text(&of_kind("system:")),
        Cell::text(&of_kind("domain:")),
        Cell::List(tags),
        Cell::text(str_at(
            &v,
            "/metadata/annotations/backstage.io~1managed-by-location",
        )),
    ]);
    Ok(())
}

#[cfg(all(test, feature = "parquet"))]
mod tests {
    use super::*;

    #[test]
    fn every_column_has_a_parquet_type_and_csv_and_json_agree() {
        for what in What::ALL {
            let schema = parquet_rows::schema(what.columns());
            assert_eq!(schema.fields().len(), what.columns().len());
        }
        let cells = vec![
            Cell::Text(Some("a,b".into())),
            Cell::Time(0),
            Cell::text(""),
            Cell::Text(None),
            Cell::text("file:/x"),
            Cell::text("files"),
            Cell::text("id"),
            Cell::Text(None),
        ];
        let mut csv = Vec::new();
        let mut rows = Rows::new(What::History, Format::Csv, &mut csv).unwrap();
        rows.row(cells.clone()).unwrap();
        assert_eq!(rows.finish().unwrap(), 1);
        let csv = String::from_utf8(csv).unwrap();
        assert_eq!(
            csv.lines().nth(1),
            Some("\"a,b\",1970-01-01T00:00:00.000Z,,,file:/x,files,id,")
        );
        let mut json = Vec::new();
        let mut rows = Rows::new(What::History, Format::Jsonl, &mut json).unwrap();
        rows.row(cells).unwrap();
        rows.finish().unwrap();
        let v: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["event_id"], "a,b");
        assert_eq!(v["event_type"], Value::Null);
        assert_eq!(v["event_at"], "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_parquet_file_reads_back_with_its_rows() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let mut out = Vec::new();
        let mut rows = Rows::new(What::ScorecardResults, Format::Parquet, &mut out).unwrap();
        for i in 0..20_000 {
            rows.row(vec![
                Cell::text("readiness"),
                Cell::Text(Some(format!("component:default/c{i}"))),
                Cell::Text((i % 2 == 0).then(|| "gold".to_owned())),
                Cell::Int(i),
                Cell::List(vec!["a".into(), "b".into()]),
                Cell::List(vec![]),
                Cell::List(vec!["group:default/t".into()]),
            ])
            .unwrap();
        }
        assert_eq!(rows.finish().unwrap(), 20_000);
        assert_eq!(&out[..4], b"PAR1");
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&out).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 20_000);
        let names: Vec<String> = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .root_schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert_eq!(names[0], "scorecard");
        assert_eq!(names[3], "score");
    }
}

#[cfg(test)]
mod lean_tests {
    use super::*;

    #[test]
    fn the_borrowed_reading_and_the_value_reading_make_the_same_rows() {
        let bodies = [
            r#"{"apiVersion":"backstage.io/v1alpha1","kind":"Component","metadata":{"name":"a","namespace":"default","uid":"u1","title":"A \"quoted\" title","tags":["java","Go"],"annotations":{"backstage.io/managed-by-location":"file:/x.yaml","other":"y"},"etag":"e"},"spec":{"type":"service","lifecycle":"production","owner":"team-a"},"relations":[{"type":"ownedBy","targetRef":"group:default/Team-A"},{"type":"partOf","targetRef":"system:default/shop"},{"type":"partOf","targetRef":"domain:default/retail"},{"type":"dependsOn","targetRef":"resource:default/db"}]}"#,
            r#"{"kind":"Group","metadata":{"name":"g"},"spec":{"type":"team","children":[]}}"#,
            r#"{"kind":"API","metadata":{"name":"b","title":7,"tags":["x",3]},"spec":{"type":{"nested":true}},"relations":[{"type":5,"targetRef":"component:default/a"}]}"#,
            r#"{"kind":"Resource","metadata":{"name":"c\u00e9","annotations":{"backstage.io/managed-by-location":null}},"spec":null}"#,
        ];
        for what in [What::Entities, What::Relations] {
            for b in bodies {
                let (mut lean, mut value) = (Vec::new(), Vec::new());
                entity_rows(what, "ref", b.as_bytes(), &mut lean).unwrap();
                entity_rows_of_value(what, "ref", b.as_bytes(), &mut value).unwrap();
                assert_eq!(lean, value, "{what:?} of {b}");
            }
        }
        let mut rows = Vec::new();
        entity_rows(What::Entities, "ref", bodies[0].as_bytes(), &mut rows).unwrap();
        assert_eq!(rows[0][5], Cell::text("A \"quoted\" title"));
        assert_eq!(rows[0][8], Cell::text("group:default/team-a"));
        assert!(entity_rows(What::Entities, "bad", b"{not json", &mut rows).is_err());
    }
}
