//! Splitting a file into YAML documents and parsing each one, under budgets,
//! into JSON values with the source position of every field.
//!
//! The stream is split on document markers (`---`, `...` at column 0) before
//! parsing, so a syntax error in one document does not lose its neighbours:
//! each document is parsed on its own. YAML forbids a document marker line
//! inside any scalar, so the split is faithful to the spec.
//!
//! Budgets apply per document: its size, serde-saphyr budgets (depth, nodes
//! in proportion to its size, aliases, alias replay, anchor recording); the
//! documents of a location that use aliases share one pool of work so that
//! many small alias bombs cannot add up. A file of tens of thousands of
//! ordinary documents is parsed on all cores, in rounds, and handed on in
//! document order one at a time.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;

/// Maximum structural nesting of a document (sequences and mappings).
pub(crate) const MAX_DEPTH: usize = 64;
/// Maximum parser nodes of one document.
const DOC_MAX_NODES: usize = 200_000;
/// Maximum events replayed from aliases in one document.
const DOC_MAX_REPLAYED: usize = 10_000;
/// Maximum events recorded for anchors in one document.
const DOC_MAX_RECORDED: usize = 10_000;
/// Maximum alias uses in one document.
const DOC_MAX_ALIASES: usize = 1_000;
/// Work (tree nodes of documents with aliases, or the alias caps of a
/// document over budget) that one location may spend in total.
const LOCATION_WORK: usize = 400_000;
/// Hard cap on the nesting our own visitor accepts, whatever the parser let
/// through (alias replay can nest below the parser's depth budget).
const VISITOR_MAX_DEPTH: u32 = 2 * MAX_DEPTH as u32;
const NESTING_SENTINEL: &str = "nesting deeper than the processor's limit";

/// One document of a file, parsed.
#[derive(Debug)]
pub(crate) struct Doc {
    /// 0-based index of the document in the file.
    pub index: u32,
    pub value: Value,
    pub spans: Spans,
}

/// Why a document could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocFailure {
    pub index: u32,
    pub budget: bool,
    pub message: String,
    pub line: u32,
    pub column: u32,
}

/// 1-based (line, column) of the fields of a document, by JSON pointer
/// (`/spec/owner`, `/spec/dependsOn/0`). For a mapping entry it is the
/// position of the key, for a sequence item the position of the item.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spans {
    root: (u32, u32),
    by_path: HashMap<String, (u32, u32)>,
}

impl Spans {
    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn nearest(&self, path: &str) -> (u32, u32) {
        let mut p = path;
        loop {
            if let Some(pos) = self.by_path.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) if i > 0 => p = &p[..i],
                _ => return self.root,
            }
        }
    }

    /// Where the document starts.
    pub fn root(&self) -> (u32, u32) {
        self.root
    }
}

/// Escapes a mapping key as one JSON pointer segment.
pub(crate) fn pointer_segment(key: &str) -> Cow<'_, str> {
    if key.contains(['~', '/']) {
        Cow::Owned(key.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(key)
    }
}

/// A raw document: its text and where it starts in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chunk<'a> {
    index: u32,
    /// 1-based line of the chunk's first line in the file.
    first_line: u32,
    text: &'a str,
}

fn is_marker(line: &str, marker: &str) -> bool {
    match line.strip_prefix(marker) {
        Some(rest) => rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']),
        None => false,
    }
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim_start_matches([' ', '\t']);
    t.is_empty() || t.starts_with('#') || t == "\n" || t == "\r\n" || t.starts_with("\r\n")
}

/// Splits a stream into documents at `---` / `...` markers (column 0).
/// Text before the first marker that holds only comments and directives
/// belongs to the first explicit document.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    struct Open {
        start: usize,
        first_line: u32,
        has_marker: bool,
        has_content: bool,
    }
    impl Open {
        fn at(start: usize, first_line: u32) -> Self {
            Open {
                start,
                first_line,
                has_marker: false,
                has_content: false,
            }
        }
        fn is_document(&self) -> bool {
            self.has_marker || self.has_content
        }
    }

    let mut raw: Vec<(u32, usize, usize)> = Vec::new();
    let close = |raw: &mut Vec<(u32, usize, usize)>, open: &Open, end: usize| {
        if open.is_document() {
            raw.push((open.first_line, open.start, end));
        }
    };
    let mut open = Open::at(0, 1);
    let mut offset = 0usize;
    let mut line_no: u32 = 1;
    for line in text.split_inclusive('\n') {
        let next_offset = offset + line.len();
        if is_marker(line, "---") {
            if open.is_document() {
                close(&mut raw, &open, offset);
                open = Open::at(offset, line_no);
            }
            // A fresh chunk (only comments/directives so far) keeps them.
            open.has_marker = true;
        } else if is_marker(line, "...") {
            close(&mut raw, &open, next_offset);
            open = Open::at(next_offset, line_no.saturating_add(1));
        } else if line.starts_with('%') && !open.is_document() {
            // A directive before a document: part of the next document.
        } else if !is_blank_or_comment(line) {
            open.has_content = true;
        }
        offset = next_offset;
        line_no = line_no.saturating_add(1);
    }
    close(&mut raw, &open, text.len());
    raw.into_iter()
        .enumerate()
        .map(|(i, (first_line, start, end))| Chunk {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            first_line,
            text: &text[start..end],
        })
        .collect()
}

// ---------------------------------------------------------------------------
// A YAML node with spans, deserialised through serde-saphyr.

#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<Node>, Spanned<Node>)>),
}

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

struct DepthGuard;

impl DepthGuard {
    fn enter<E: de::Error>() -> Result<DepthGuard, E> {
        let depth = DEPTH.with(|d| {
            let v = d.get().saturating_add(1);
            d.set(v);
            v
        });
        let guard = DepthGuard;
        if depth > VISITOR_MAX_DEPTH {
            return Err(E::custom(NESTING_SENTINEL));
        }
        Ok(guard)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::I64(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::U64(v))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
                Ok(match i64::try_from(v) {
                    Ok(v) => Node::I64(v),
                    Err(_) => Node::F64(v as f64),
                })
            }
            fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
                Ok(match u64::try_from(v) {
                    Ok(v) => Node::U64(v),
                    Err(_) => Node::F64(v as f64),
                })
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::F64(v))
            }
            fn visit_char<E>(self, v: char) -> Result<Node, E> {
                Ok(Node::Str(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Str(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Node, E> {
                Ok(Node::Str(String::from_utf8_lossy(v).into_owned()))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Node, D2::Error> {
                Node::deserialize(d)
            }
            fn visit_newtype_struct<D2: Deserializer<'de>>(self, d: D2) -> Result<Node, D2::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let _guard = DepthGuard::enter::<A::Error>()?;
                let mut items = Vec::new();
                while let Some(item) = a.next_element::<Spanned<Node>>()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let _guard = DepthGuard::enter::<A::Error>()?;
                let mut entries = Vec::new();
                while let Some(key) = a.next_key::<Spanned<Node>>()? {
                    let value = a.next_value::<Spanned<Node>>()?;
                    entries.push((key, value));
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(NodeVisitor)
    }
}

/// Converts a node tree to JSON, recording positions (shifted by the line
/// offset of the chunk) and counting nodes.
struct Converter {
    line_offset: u32,
    spans: HashMap<String, (u32, u32)>,
    nodes: usize,
}

/// Positions are recorded down to this depth of JSON pointer; deeper fields
/// report the position of their nearest recorded ancestor.
const SPAN_DEPTH: usize = 8;

impl Converter {
    fn pos(&self, loc: &serde_saphyr::Location) -> (u32, u32) {
        let line = u32::try_from(loc.line()).unwrap_or(u32::MAX);
        let column = u32::try_from(loc.column()).unwrap_or(u32::MAX);
        if line == 0 {
            (0, 0)
        } else {
            (line.saturating_add(self.line_offset), column)
        }
    }

    fn record(&mut self, path: &str, depth: usize, loc: &serde_saphyr::Location) {
        if depth <= SPAN_DEPTH {
            let pos = self.pos(loc);
            if pos.0 != 0 {
                self.spans.entry(path.to_string()).or_insert(pos);
            }
        }
    }

    fn value(&mut self, node: Node, path: &mut String, depth: usize) -> Value {
        self.nodes += 1;
        match node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::I64(i) => Value::Number(i.into()),
            Node::U64(u) => Value::Number(u.into()),
            Node::F64(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            Node::Str(s) => Value::String(s),
            Node::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&i.to_string());
                    self.record(path, depth + 1, &item.referenced);
                    out.push(self.value(item.value, path, depth + 1));
                    path.truncate(len);
                }
                Value::Array(out)
            }
            Node::Map(entries) => {
                let mut out = Map::new();
                for (key, value) in entries {
                    let key_text = self.key(key.value);
                    let len = path.len();
                    path.push('/');
                    path.push_str(&pointer_segment(&key_text));
                    self.record(path, depth + 1, &key.referenced);
                    let v = self.value(value.value, path, depth + 1);
                    path.truncate(len);
                    out.insert(key_text, v);
                }
                Value::Object(out)
            }
        }
    }

    /// Mapping keys become strings, as a JavaScript YAML loader makes them.
    fn key(&mut self, node: Node) -> String {
        match node {
            Node::Str(s) => s,
            Node::Null => String::new(),
            other => {
                let mut scratch = String::new();
                match self.value(other, &mut scratch, SPAN_DEPTH + 1) {
                    Value::String(s) => s,
                    v => v.to_string(),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Errors of serde-saphyr, classified.

fn is_budget_error(e: &serde_saphyr::Error) -> bool {
    use serde_saphyr::Error as E;
    match e.without_snippet() {
        E::Budget { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => true,
        E::AliasError { error, .. } => is_budget_error(error),
        other => {
            let text = other.to_string();
            text.contains("recursion limit exceeded") || text.contains(NESTING_SENTINEL)
        }
    }
}

fn render_error(e: &serde_saphyr::Error, line_offset: u32) -> String {
    let options = serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
        line_offset: u64::from(line_offset),
    };
    e.render_with_options(options)
}

fn options(max_nodes: usize) -> serde_saphyr::Options {
    let cap = |limit: usize| limit.max(1);
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            flow_nesting_limit: MAX_DEPTH,
            max_nodes: cap(max_nodes),
            max_events: cap(max_nodes).saturating_mul(3),
            max_aliases: DOC_MAX_ALIASES,
            max_anchors: DOC_MAX_ALIASES,
            max_recorded_anchor_events: cap(DOC_MAX_RECORDED),
            max_recorded_anchor_bytes: 4 * 1024 * 1024,
            max_documents: 16,
            max_merge_keys: DOC_MAX_ALIASES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: cap(DOC_MAX_REPLAYED),
            max_replay_stack_depth: 8,
        },
        emit_comments: false,
        strict_booleans: true,
        with_snippet: false,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::AsString,
    }
}

/// Normalises line breaks: a lone CR becomes LF (YAML folds every line
/// break to LF inside scalars, so this changes no value) so that lines can be
/// counted and split on LF alone.
fn normalise_line_breaks(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let lone_cr = bytes
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
    if !lone_cr {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() != Some(&'\n') {
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Parses every document of `text`. Null and empty documents yield nothing;
/// a document that fails yields a [`DocFailure`] and parsing goes on with the
/// next one, until the location's alias work budget is spent.
#[cfg(test)]
pub(crate) fn parse_stream(text: &str) -> Vec<Result<Doc, DocFailure>> {
    let mut out = Vec::new();
    parse_each(text, usize::MAX, |d| d, |r| out.push(r));
    out
}

/// Documents parsed (and mapped) per round of the worker threads.
const BATCH: usize = 512;

/// Parses every document of `text`, `map`s each parsed document on the
/// worker threads (all cores), and hands the results to `each` in document
/// order, so a file of many documents is never held parsed all at once.
///
/// Budgets apply per document: its size (`max_document_bytes`), nodes in
/// proportion to its size, and alias expansion. Documents with aliases
/// also draw on one pool per location ([`LOCATION_WORK`]) so that many
/// small alias bombs cannot add up; once it is spent, the remaining
/// documents fail (rounds are sized so that little work is wasted past
/// that point). Documents without aliases cost the pool nothing: their
/// size bounds their work.
pub(crate) fn parse_each<T: Send>(
    text: &str,
    max_document_bytes: usize,
    map: impl Fn(Doc) -> T + Sync,
    mut each: impl FnMut(Result<T, DocFailure>),
) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = normalise_line_breaks(text);
    let chunks = split_documents(&text);
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 8);
    let mut work_left = LOCATION_WORK;
    for batch in chunks.chunks(BATCH) {
        let parsed: Vec<Parsed<T>> = if workers == 1 || batch.len() < 4 {
            batch
                .iter()
                .map(|c| parse_chunk(c, max_document_bytes, &map))
                .collect()
        } else {
            let per = batch.len().div_ceil(workers);
            std::thread::scope(|scope| {
                let handles: Vec<_> = batch
                    .chunks(per)
                    .map(|part| {
                        let map = &map;
                        scope.spawn(move || {
                            part.iter()
                                .map(|c| parse_chunk(c, max_document_bytes, map))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        for (chunk, result) in batch.iter().zip(parsed) {
            if work_left == 0 {
                each(Err(DocFailure {
                    index: chunk.index,
                    budget: true,
                    message: format!(
                        "the location exceeded its total alias expansion budget \
                         ({LOCATION_WORK} YAML nodes); this document and the ones after it \
                         were not read"
                    ),
                    line: chunk.first_line,
                    column: 1,
                }));
                return;
            }
            work_left = work_left.saturating_sub(result.alias_work);
            for r in result.docs {
                each(r);
            }
        }
    }
}

/// One document's parse: its results and the alias work it cost.
struct Parsed<T> {
    docs: Vec<Result<T, DocFailure>>,
    alias_work: usize,
}

fn parse_chunk<T>(
    chunk: &Chunk<'_>,
    max_document_bytes: usize,
    map: &(impl Fn(Doc) -> T + Sync),
) -> Parsed<T> {
    let line_offset = chunk.first_line.saturating_sub(1);
    let has_alias = chunk.text.contains('*');
    if chunk.text.len() > max_document_bytes {
        return Parsed {
            docs: vec![Err(DocFailure {
                index: chunk.index,
                budget: true,
                message: format!(
                    "document {} is {} bytes, over the processor's per-document limit of \
                     {max_document_bytes} bytes",
                    chunk.index,
                    chunk.text.len()
                ),
                line: chunk.first_line,
                column: 1,
            })],
            alias_work: 0,
        };
    }
    DEPTH.with(|d| d.set(0));
    // A node costs at least a byte of text unless an alias replays it, and
    // replay has budgets of its own: nodes scale with the document.
    let nodes = DOC_MAX_NODES.max(chunk.text.len());
    let parsed: Result<Vec<Spanned<Node>>, serde_saphyr::Error> =
        serde_saphyr::from_multiple_with_options(chunk.text, options(nodes));
    let mut out = Parsed {
        docs: Vec::new(),
        alias_work: 0,
    };
    match parsed {
        Ok(nodes) => {
            for node in nodes {
                let mut conv = Converter {
                    line_offset,
                    spans: HashMap::new(),
                    nodes: 0,
                };
                let root = conv.pos(&node.referenced);
                let mut path = String::new();
                let value = conv.value(node.value, &mut path, 0);
                if has_alias {
                    out.alias_work += conv.nodes;
                }
                if value.is_null() {
                    continue;
                }
                let root = if root.0 == 0 {
                    (chunk.first_line, 1)
                } else {
                    root
                };
                out.docs.push(Ok(map(Doc {
                    index: chunk.index,
                    value,
                    spans: Spans {
                        root,
                        by_path: conv.spans,
                    },
                })));
            }
        }
        Err(e) => {
            let budget = is_budget_error(&e);
            if budget || has_alias {
                // Whatever alias work the parser did before it gave up.
                out.alias_work += DOC_MAX_REPLAYED + DOC_MAX_RECORDED;
            }
            let (line, column) = match e.location() {
                Some(loc) if loc.line() > 0 => (
                    u32::try_from(loc.line())
                        .unwrap_or(u32::MAX)
                        .saturating_add(line_offset),
                    u32::try_from(loc.column()).unwrap_or(u32::MAX).max(1),
                ),
                _ => (chunk.first_line, 1),
            };
            out.docs.push(Err(DocFailure {
                index: chunk.index,
                budget,
                message: render_error(&e, line_offset),
                line,
                column,
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(text: &str) -> Vec<(u32, u32, &str)> {
        split_documents(text)
            .into_iter()
            .map(|c| (c.index, c.first_line, c.text))
            .collect()
    }

    #[test]
    fn splits_on_markers_only_at_column_zero() {
        let text = "a: 1\n---\nb: |\n  --- not a marker\n---\n---\n# c\nc: 3\n";
        assert_eq!(
            chunks(text),
            vec![
                (0, 1, "a: 1\n"),
                (1, 2, "---\nb: |\n  --- not a marker\n"),
                (2, 5, "---\n"),
                (3, 6, "---\n# c\nc: 3\n"),
            ]
        );
    }

    #[test]
    fn leading_comments_and_directives_join_the_first_document() {
        let text = "# header\n%YAML 1.2\n---\na: 1\n...\n# trailer\n";
        assert_eq!(
            chunks(text),
            vec![(0, 1, "# header\n%YAML 1.2\n---\na: 1\n...\n")]
        );
        assert!(chunks("").is_empty());
        assert!(chunks("# only a comment\n").is_empty());
    }

    #[test]
    fn parses_documents_with_absolute_positions() {
        let docs = parse_stream("a: 1\n---\nb:\n  c: [x, y]\n");
        assert_eq!(docs.len(), 2);
        let second = docs[1].as_ref().unwrap();
        assert_eq!(second.index, 1);
        assert_eq!(second.value["b"]["c"][1], "y");
        assert_eq!(second.spans.nearest("/b/c"), (4, 3));
        assert_eq!(second.spans.nearest("/b/c/1"), (4, 10));
        assert_eq!(second.spans.nearest("/b/missing"), (3, 1));
    }

    #[test]
    fn yaml_1_2_scalars() {
        let docs = parse_stream("a: yes\nb: true\nc: ~\nd: 0x1F\ne: .nan\nf: '1'\n");
        let v = &docs[0].as_ref().unwrap().value;
        assert_eq!(v["a"], "yes");
        assert_eq!(v["b"], true);
        assert!(v["c"].is_null());
        assert_eq!(v["d"], 31);
        assert_eq!(v["e"], ".nan");
        assert_eq!(v["f"], "1");
    }

    #[test]
    fn a_broken_document_keeps_its_neighbours() {
        let docs = parse_stream("a: 1\n---\nb: [x\nc: 3\n---\nd: 4\n");
        assert_eq!(docs.len(), 3);
        assert!(docs[0].is_ok());
        let err = docs[1].as_ref().unwrap_err();
        assert!(!err.budget);
        assert_eq!(err.index, 1);
        assert!(err.line >= 3, "{err:?}");
        assert!(docs[2].is_ok());
    }

    #[test]
    fn lone_carriage_returns_are_line_breaks() {
        let docs = parse_stream("a: 1\r---\rb: 2\r");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].as_ref().unwrap().value["b"], 2);
    }

    #[test]
    fn pointer_segments_are_escaped() {
        assert_eq!(pointer_segment("a/b~c"), "a~1b~0c");
        assert_eq!(pointer_segment("plain"), "plain");
    }
}
