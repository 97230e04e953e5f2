//! Key layout. One keyspace, a table byte first, then the parts separated
//! by 0x00 (no part contains 0x00: refs, location keys and lower-cased
//! search values are text).
//!
//! | table | key | value |
//! |---|---|---|
//! | `E` | ref key | the served entity JSON (stitched, with uid and etag) |
//! | `U` | uid | ref key |
//! | `C` | ref key | [`crate::records::Claims`]: locations claiming the ref, winner first |
//! | `B` | location, ref key | [`proto::ProcessedEntity`] as the location yields it |
//! | `L` | location | [`crate::records::LocationRecord`] |
//! | `I` | location id (uuid) | location key |
//! | `g` | source ref key, relation type, target ref key | [`crate::records::RelationRow`]: one relation and the entities that emit it |
//! | `G` | source ref key, relation type, target ref key, time (ms, sign-flipped BE) | the relation from that time on, or its end ([`crate::relations`]) |
//! | `s` | ref key | [`crate::records::SearchRows`] of the served entity |
//! | `x` | search key, value | [`crate::postings::Posting`]: the entities with it |
//! | `o` | ref key | the ref's ordinal in posting lists (u32 BE) |
//! | `r` | ordinal (u32 BE) | ref key |
//! | `h` | search key, value, segment (u32 BE) | [`crate::temporal::Segment`]: the posting list's changes over time |
//! | `u` | uid | ref key of every entity the index ever held |
//! | `H` | ref key, time (ms, BE), event id | [`crate::records::HistoryRecord`] |
//! | `P` | ref key, time (ms, sign-flipped BE) | the served JSON from that time on ([`crate::records::encode_version`]) |
//! | `p` | ref key | the time of its latest version while that version is what `E` serves |
//! | `j` | ref key | [`crate::relations::Mark`]: the time of the latest change of its relations in `G`, how many batches changed them, then 1 once a late change was applied to them or its versions |
//! | `N` | sequence (u64 BE) | [`crate::feed::FeedRecord`]: the change feed, in commit order |
//! | `O` | topic, partition (BE) | next offset to apply (i64 BE) |
//! | `M` | name | store metadata (layout version) |

pub const ENTITY: u8 = b'E';
pub const UID: u8 = b'U';
pub const CLAIMS: u8 = b'C';
pub const BODY: u8 = b'B';
pub const LOCATION: u8 = b'L';
pub const LOCATION_ID: u8 = b'I';
/// Relation sets of older stores (one record per source); a store that
/// has them is rebuilt (see [`crate::relations::ensure_layout`]).
pub const RELATIONS: u8 = b'R';
/// One row per relation, stitched into served entities when read.
pub const RELATION: u8 = b'g';
/// Each relation's changes over time, for reads `asOf`.
pub const RELATION_HISTORY: u8 = b'G';
pub const SEARCH_ROWS: u8 = b's';
/// The search index of older stores (rows per entity), deleted by
/// [`crate::postings::upgrade`].
pub const SEARCH: u8 = b'S';
/// Facet counts of older stores, deleted by [`crate::postings::upgrade`].
pub const FACET: u8 = b'F';
pub const POSTING: u8 = b'x';
pub const ORDINAL: u8 = b'o';
pub const ORDINAL_REF: u8 = b'r';
pub const POSTING_HISTORY: u8 = b'h';
pub const UID_EVER: u8 = b'u';
pub const HISTORY: u8 = b'H';
pub const OFFSET: u8 = b'O';
pub const FEED: u8 = b'N';
pub const VERSION: u8 = b'P';
/// Per ref: the time of its latest version in `P`, present while that
/// version is what `E` serves.
pub const LATEST_VERSION: u8 = b'p';
/// Per ref: the time of the latest change of its relations in `G`.
pub const LATEST_RELATION: u8 = b'j';
pub const META: u8 = b'M';

/// `table` + parts joined by 0x00.
pub fn key(table: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len() + 1).sum::<usize>();
    let mut k = Vec::with_capacity(len);
    k.push(table);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p);
    }
    k
}

/// A prefix covering every key whose first parts are `parts`.
pub fn prefix(table: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = key(table, parts);
    if !parts.is_empty() {
        k.push(0);
    }
    k
}

pub fn entity(refkey: &str) -> Vec<u8> {
    key(ENTITY, &[refkey.as_bytes()])
}
pub fn uid(uid: &str) -> Vec<u8> {
    key(UID, &[uid.as_bytes()])
}
pub fn claims(refkey: &str) -> Vec<u8> {
    key(CLAIMS, &[refkey.as_bytes()])
}
pub fn body(location: &str, refkey: &str) -> Vec<u8> {
    key(BODY, &[location.as_bytes(), refkey.as_bytes()])
}
pub fn location(location: &str) -> Vec<u8> {
    key(LOCATION, &[location.as_bytes()])
}
pub fn location_id(id: &uuid::Uuid) -> Vec<u8> {
    key(LOCATION_ID, &[id.as_hyphenated().to_string().as_bytes()])
}
/// A relation row: `g` source, type, target.
pub fn relation(source: &str, relation_type: &str, target: &str) -> Vec<u8> {
    key(
        RELATION,
        &[
            source.as_bytes(),
            relation_type.as_bytes(),
            target.as_bytes(),
        ],
    )
}
/// Every relation row of `source`.
pub fn relations_of(source: &str) -> Vec<u8> {
    prefix(RELATION, &[source.as_bytes()])
}
/// A relation's change at `at_ms`: its row key under `G`, then the time.
pub fn relation_history(row: &[u8], at_ms: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(row.len() + 9);
    k.push(RELATION_HISTORY);
    k.extend_from_slice(&row[1..]);
    k.push(0);
    k.extend_from_slice(&time_part(at_ms));
    k
}
pub fn search_rows(refkey: &str) -> Vec<u8> {
    key(SEARCH_ROWS, &[refkey.as_bytes()])
}
pub fn posting(k: &str, v: &str) -> Vec<u8> {
    key(POSTING, &[k.as_bytes(), v.as_bytes()])
}
pub fn ordinal(refkey: &str) -> Vec<u8> {
    key(ORDINAL, &[refkey.as_bytes()])
}
pub fn ordinal_ref(ordinal: u32) -> Vec<u8> {
    let mut k = vec![ORDINAL_REF];
    k.extend_from_slice(&ordinal.to_be_bytes());
    k
}
/// The ordinal of an [`ordinal_ref`] key.
pub fn ordinal_of_key(k: &[u8]) -> Option<u32> {
    match k {
        [ORDINAL_REF, rest @ ..] => Some(u32::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}
pub fn history(refkey: &str, at_ms: i64, event_id: &uuid::Uuid) -> Vec<u8> {
    let mut k = prefix(HISTORY, &[refkey.as_bytes()]);
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.extend_from_slice(event_id.as_bytes());
    k
}
/// Times in `V` keys sort as numbers, before 1970 too (sign bit flipped).
pub fn version(refkey: &str, at_ms: i64) -> Vec<u8> {
    let mut k = prefix(VERSION, &[refkey.as_bytes()]);
    k.extend_from_slice(&time_part(at_ms));
    k
}
pub fn latest_version(refkey: &str) -> Vec<u8> {
    prefix(LATEST_VERSION, &[refkey.as_bytes()])
}
pub fn latest_relation(refkey: &str) -> Vec<u8> {
    prefix(LATEST_RELATION, &[refkey.as_bytes()])
}
pub fn time_part(at_ms: i64) -> [u8; 8] {
    ((at_ms as u64) ^ (1 << 63)).to_be_bytes()
}
/// The time of a [`version`] key.
pub fn version_time(k: &[u8]) -> Option<i64> {
    let t: [u8; 8] = k.get(k.len().checked_sub(8)?..)?.try_into().ok()?;
    Some((u64::from_be_bytes(t) ^ (1 << 63)) as i64)
}
pub fn feed(seq: u64) -> Vec<u8> {
    let mut k = vec![FEED];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}
/// The sequence number of a [`feed`] key.
pub fn feed_seq(k: &[u8]) -> Option<u64> {
    match k {
        [FEED, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}
/// The name of the feed's last sequence number under `M`.
pub const FEED_SEQ: &str = "feed-seq";
/// The name of the next entity ordinal under `M` (see [`crate::postings`]).
pub const ORDINAL_NEXT: &str = "ordinal-next";
pub fn meta(name: &str) -> Vec<u8> {
    key(META, &[name.as_bytes()])
}
pub fn offset(topic: &str, partition: u32) -> Vec<u8> {
    let mut k = prefix(OFFSET, &[topic.as_bytes()]);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// The last part of a key (after the final 0x00).
pub fn last_part(k: &[u8]) -> &[u8] {
    match k.iter().rposition(|b| *b == 0) {
        Some(i) => &k[i + 1..],
        None => &k[1..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_parts() {
        assert!(posting("kind", "api") < posting("kind", "component"));
        assert!(posting("metadata.tags", "z") < posting("metadata.tags.a", ""));
        assert!(posting("kind", "api").starts_with(&prefix(POSTING, &[b"kind"])));
        assert!(ordinal_ref(1) < ordinal_ref(256));
        assert_eq!(ordinal_of_key(&ordinal_ref(70_000)), Some(70_000));
        assert_eq!(
            last_part(&entity("component:default/a")),
            b"component:default/a"
        );
        assert!(history("r", 1, &uuid::Uuid::nil()) < history("r", 2, &uuid::Uuid::nil()));
    }

    #[test]
    fn every_table_has_its_own_byte() {
        use crate::scorecard::records as sc;
        let tables = [
            ENTITY,
            UID,
            CLAIMS,
            BODY,
            LOCATION,
            LOCATION_ID,
            RELATIONS,
            RELATION,
            RELATION_HISTORY,
            SEARCH_ROWS,
            SEARCH,
            FACET,
            POSTING,
            ORDINAL,
            ORDINAL_REF,
            POSTING_HISTORY,
            UID_EVER,
            HISTORY,
            OFFSET,
            FEED,
            VERSION,
            LATEST_VERSION,
            LATEST_RELATION,
            META,
            sc::DEFINITION_SET,
            sc::DEFINITION,
            sc::RESULT,
            sc::RESULT_HISTORY,
            sc::ROLLUP,
            sc::DEPENDENCY,
            sc::DEPENDED,
            sc::DUE,
            sc::FACTS,
            sc::FACT_HISTORY,
            sc::EXEMPTIONS,
            sc::EXEMPTION_ID,
            sc::BY_LEVEL,
            sc::HISTORY_END,
        ];
        let mut seen = std::collections::BTreeSet::new();
        for t in tables {
            assert!(seen.insert(t), "table byte {:?} is used twice", t as char);
        }
    }
}
