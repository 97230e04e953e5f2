//! `catalog-bench --history`: a generated org with a year of history, for
//! the analysts' reads. The demo-shaped org of `--entities` is created a
//! year ago; then every day a share of its files is edited (descriptions,
//! every fifth an owner move) and a few entities are added and removed,
//! each day applied as one projector batch at that day's time, until the
//! history holds about ten changes per entity. Then, on the store itself
//! (no HTTP): a past catalog's by-query page and facets, a 52-week metric
//! by owner, the change feed from a cursor a month back, and a Parquet
//! export of every entity. A `--dir` that already holds a built history
//! is measured again without building it.

use crate::{fmt_d, generate_org, percentile, walk_files};
use anyhow::Context;
use chrono::{DateTime, Duration as Days, Utc};
use projector::adoption::{Dimension, Interval, Metric, Options, buckets};
use projector::{Catalog, EntityFilter, Fold, Predicate, RefStart, RocksStore, Store};
use proto::{Content, LocationKey, Observation, ObservedContent, SourceId};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Days of history.
const DAYS: i64 = 365;

fn observe(path: &Path, org: &Path, text: &str, at: DateTime<Utc>) -> Observation {
    Observation {
        event_id: uuid::Uuid::now_v7(),
        source: SourceId::new("bench"),
        observed_at: at,
        location: LocationKey::file(path),
        origin: LocationKey::file(org),
        first_seen_at: at,
        content: ObservedContent::Present {
            content: Content::Utf8 {
                text: text.to_owned(),
            },
        },
    }
}

/// One day's edit of a file: descriptions carry the day, every fifth
/// edited file moves its owners, and some files gain or lose an entity.
fn edit(text: &str, day: i64, k: usize, groups: usize) -> String {
    let mut docs: Vec<String> = text.split("---\n").map(str::to_owned).collect();
    for doc in &mut docs {
        let lines: Vec<String> = doc
            .lines()
            .map(|l| {
                if let Some(d) = l.strip_prefix("  description: ") {
                    let base = d.split(" (rev").next().unwrap_or(d);
                    format!("  description: {base} (rev {day})")
                } else if k.is_multiple_of(5) && l.starts_with("  owner: ") {
                    format!(
                        "  owner: group:default/team-{}",
                        (day as usize * 31 + k) % groups
                    )
                } else {
                    l.to_owned()
                }
            })
            .collect();
        *doc = lines.join("\n") + "\n";
    }
    if k % 50 == 1 {
        docs.push(format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: new-{day}-{k}\n  description: added on day {day}\nspec:\n  type: service\n  lifecycle: experimental\n  owner: group:default/team-{}\n",
            k % groups
        ));
    } else if k % 50 == 2 && docs.len() > 1 {
        docs.pop();
    }
    docs.join("---\n")
}

/// Generates the org and folds a year of its history into `store`.
fn build(entities: usize, per_file: usize, root: &Path, store: &RocksStore) -> anyhow::Result<()> {
    let org = root.join("org");
    generate_org(&org, entities, per_file)?;
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for path in walk_files(&org)? {
        let text = std::fs::read_to_string(&path)?;
        files.push((path, text));
    }
    files.sort();
    let groups = (entities / 200).max(2);
    let per_day = (files.len() * 33 / 1000).max(1);
    // A new store keeps the posting lists' history from its first write.
    projector::temporal::upgrade(store)?;
    let cfg = processor::ProcessorConfig::default();
    let start = Utc::now() - Days::days(DAYS);
    let t = Instant::now();
    let mut applied = 0usize;
    for day in 0..=DAYS {
        let at = start + Days::days(day);
        let touched: Vec<usize> = if day == 0 {
            (0..files.len()).collect()
        } else {
            (0..per_day)
                .map(|k| (day as usize * 7919 + k * 104_729) % files.len())
                .collect()
        };
        let mut fold = Fold::new(store);
        for (k, &f) in touched.iter().enumerate() {
            if day > 0 {
                files[f].1 = edit(&files[f].1, day, k, groups);
            }
            let event = processor::process(&observe(&files[f].0, &org, &files[f].1, at), &cfg);
            fold.apply(&event)?;
            applied += 1;
        }
        store.write(fold.finish()?)?;
        if day % 30 == 0 {
            eprintln!(
                "history: day {day}, {applied} events applied, {:.0} s",
                t.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "history: {entities} entities in {} files, {DAYS} days ({per_day} files edited a day), {} changes, built in {:.0} s",
        files.len(),
        projector::feed::last_seq(store)?,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn run(entities: usize, per_file: usize, root: &Path) -> anyhow::Result<()> {
    // A `--dir` that already holds a built history is read again as it is.
    let reuse = root.join("store").join("CURRENT").exists();
    let store = Arc::new(RocksStore::open(&root.join("store"), 256 << 20)?);
    if reuse {
        projector::temporal::upgrade(store.as_ref())?;
    } else {
        build(entities, per_file, root, &store)?;
    }
    let catalog = Catalog::new(store.clone() as Arc<dyn Store>);
    let (first, _) = catalog.feed(0, 1, usize::MAX, &mut |_| true)?;
    let start = first
        .first()
        .map(|e| e.record.at)
        .context("the history is empty")?;
    if reuse {
        println!(
            "history: reusing the store in {} ({} changes)",
            root.display(),
            catalog.feed_last()?
        );
    }

    // Past catalogs: twenty instants spread over the year, each read for
    // the first time (nothing cached), then read again.
    let predicate = Predicate::from_filter(
        &EntityFilter::parse(&["kind=component,spec.type=service".to_owned()])?
            .context("a filter")?,
    );
    let instants: Vec<i64> = (0..20)
        .map(|i| (start + Days::days(10 + i * 18)).timestamp_millis())
        .collect();
    let (mut first, mut again, mut facet) = (Vec::new(), Vec::new(), Vec::new());
    let (mut matched, mut values) = (0, 0);
    for &at in &instants {
        for pass in 0..2 {
            let t = Instant::now();
            let then = catalog.as_of(at)?;
            let page = then.page_in_ref_order(Some(&predicate), RefStart::Offset(0), 100)?;
            for r in &page.refs {
                then.entity(r)?;
            }
            matched = page.total;
            if pass == 0 {
                first.push(t.elapsed());
                let t = Instant::now();
                let facets = then.facets(&["metadata.tags".to_owned()], None)?;
                facet.push(t.elapsed());
                values = facets.values().map(Vec::len).sum::<usize>();
            } else {
                again.push(t.elapsed());
            }
        }
    }
    for v in [&mut first, &mut again, &mut facet] {
        v.sort();
    }
    println!(
        "asOf (20 instants over the year): by-query page of 100 (filtered, with bodies, total counted) first read p50 {} p99 {}, read again p50 {}; facets over metadata.tags p50 {} p99 {} ({values} values at the last instant, {matched} matching there)",
        fmt_d(percentile(&first, 0.5)),
        fmt_d(percentile(&first, 0.99)),
        fmt_d(percentile(&again, 0.5)),
        fmt_d(percentile(&facet, 0.5)),
        fmt_d(percentile(&facet, 0.99)),
    );

    // A 52-week metric by owner.
    let weeks = buckets(Utc::now() - Days::weeks(52), Utc::now(), Interval::Week);
    let mut took = Vec::new();
    let mut series = 0;
    for _ in 0..3 {
        let t = Instant::now();
        series = catalog
            .metric(
                Metric::Entities,
                &weeks,
                Dimension::Owner,
                &Options::default(),
            )?
            .len();
        took.push(t.elapsed());
    }
    took.sort();
    println!(
        "metric entities by owner, {} weeks: p50 {} ({series} series)",
        weeks.len(),
        fmt_d(percentile(&took, 0.5))
    );

    // Ownership coverage of the components, by type, over the same weeks.
    let components = EntityFilter::parse(&["kind=component".to_owned()])?;
    let mut took = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        series = catalog
            .metric(
                Metric::OwnershipCoverage,
                &weeks,
                Dimension::Type,
                &Options {
                    filter: components.as_ref(),
                    ..Options::default()
                },
            )?
            .len();
        took.push(t.elapsed());
    }
    took.sort();
    println!(
        "metric ownership-coverage of kind=component by type, {} weeks: p50 {} ({series} series)",
        weeks.len(),
        fmt_d(percentile(&took, 0.5))
    );

    // The feed from a cursor a month back, records and bodies.
    let month_ago = Utc::now() - Days::days(30);
    let mut cursor = 0;
    loop {
        let (entries, last) = catalog.feed(cursor, 10_000, usize::MAX, &mut |_| true)?;
        match entries.iter().find(|e| e.record.at >= month_ago) {
            Some(e) => {
                cursor = e.seq - 1;
                break;
            }
            None if entries.is_empty() => break,
            None => cursor = last,
        }
    }
    let (mut n, mut after, t) = (0u64, cursor, Instant::now());
    loop {
        let (entries, last) = catalog.feed(after, 1000, usize::MAX, &mut |_| true)?;
        if entries.is_empty() {
            break;
        }
        n += entries.len() as u64;
        after = last;
    }
    let records = t.elapsed();
    let (mut bodies, mut after, t) = (0u64, cursor, Instant::now());
    loop {
        let (items, last) = query::feed::page_of_everything(&catalog, after, 1000)
            .map_err(|e| anyhow::anyhow!("the feed: {e}"))?;
        if last == after {
            break;
        }
        bodies += items.iter().map(|i| i.bodies as u64).sum::<u64>();
        after = last;
    }
    let with_bodies = t.elapsed();
    println!(
        "feed from a month back: {n} changes; records {:.0}/s, as GET /api/history/events shows them (with the bodies before and after) {:.0}/s ({bodies} bodies)",
        n as f64 / records.as_secs_f64().max(1e-9),
        n as f64 / with_bodies.as_secs_f64().max(1e-9)
    );

    // A Parquet export of every entity.
    let out = root.join("entities.parquet");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?,
    );
    let t = Instant::now();
    let rows = projector::export::export(
        &catalog,
        projector::export::What::Entities,
        projector::export::Format::Parquet,
        &mut file,
    )?;
    let took = t.elapsed();
    println!(
        "export of entities as Parquet: {rows} rows in {} = {:.0} entities/s, {} KiB",
        fmt_d(took),
        rows as f64 / took.as_secs_f64().max(1e-9),
        std::fs::metadata(&out)?.len() / 1024
    );
    Ok(())
}
