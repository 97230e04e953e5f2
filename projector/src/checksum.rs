//! A checksum of the projections, to show that two projector replicas (or
//! a replica and a rebuild) hold the same state: SHA-256 over every key and
//! value in key order, except the tables that record the *path* state took
//! rather than the state (the scorecard result history, whose records
//! depend on how batches fell, with the time of each scorecard's newest,
//! the served versions, one per batch that changed a ref, with the time of
//! each ref's latest, each relation's
//! changes, the change feed, numbered in the order this store
//! applied partitions, with its last number, and the posting lists with
//! their entity ordinals, numbered in the order this store met the refs:
//! the search rows they are built from are hashed; see ARCHITECTURE.md,
//! Convergence).

use sha2::{Digest, Sha256};

use crate::scorecard::records::{DEPENDED, HISTORY_END, RESULT, RESULT_COMPACT, RESULT_HISTORY};
use crate::store::{Store, StoreError};

/// Tables left out of [`checksum`] unless `include_path` is set.
pub const PATH_TABLES: [u8; 13] = [
    RESULT_HISTORY,
    HISTORY_END,
    DEPENDED,
    crate::keys::FEED,
    crate::keys::VERSION,
    crate::keys::LATEST_VERSION,
    crate::keys::RELATION_HISTORY,
    crate::keys::LATEST_RELATION,
    crate::keys::POSTING,
    crate::keys::ORDINAL,
    crate::keys::ORDINAL_REF,
    crate::keys::POSTING_HISTORY,
    crate::keys::UID_EVER,
];

/// What [`checksum`] read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreChecksum {
    /// Hex SHA-256 of the length-prefixed keys and values, in key order.
    pub sha256: String,
    /// Keys hashed.
    pub keys: u64,
    /// Keys of [`PATH_TABLES`] left out.
    pub skipped: u64,
}

/// Hashes the store. With `include_path`, the path tables count too.
pub fn checksum(store: &dyn Store, include_path: bool) -> Result<StoreChecksum, StoreError> {
    let mut hash = Sha256::new();
    let (mut keys, mut skipped) = (0u64, 0u64);
    // The feed's last number counts the feed's records, which include
    // scorecard outcome changes, as many as batches happened to make.
    let feed_seq = crate::keys::meta(crate::keys::FEED_SEQ);
    // Entity ordinals are numbered in the order this store met the refs.
    let ordinal_next = crate::keys::meta(crate::keys::ORDINAL_NEXT);
    store.scan(&[], None, &mut |k, v| {
        if !include_path
            && (k.first().is_some_and(|t| PATH_TABLES.contains(t))
                || k == feed_seq.as_slice()
                || k == ordinal_next.as_slice())
        {
            skipped += 1;
            return true;
        }
        // A result is hashed in its compact form, whichever form it is
        // stored in: a result an older build wrote is kept until it
        // changes, while a replay writes it compact.
        let compact;
        let v = if k.first() == Some(&RESULT) && v.first() != Some(&RESULT_COMPACT) {
            match crate::scorecard::ResultRecord::decode(k, v) {
                Ok(r) => {
                    compact = r.encode();
                    compact.as_slice()
                }
                Err(_) => v,
            }
        } else {
            v
        };
        hash.update((k.len() as u64).to_be_bytes());
        hash.update(k);
        hash.update((v.len() as u64).to_be_bytes());
        hash.update(v);
        keys += 1;
        true
    })?;
    Ok(StoreChecksum {
        sha256: hex::encode(hash.finalize()),
        keys,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn store(pairs: &[(&[u8], &[u8])]) -> MemStore {
        let s = MemStore::new();
        s.write(
            pairs
                .iter()
                .map(|(k, v)| (k.to_vec(), Some(v.to_vec())))
                .collect(),
        )
        .unwrap();
        s
    }

    #[test]
    fn equal_state_equal_sum_and_any_difference_shows() {
        let a = store(&[(b"Ex", b"1"), (b"Ey", b"2")]);
        let b = store(&[(b"Ey", b"2"), (b"Ex", b"1")]);
        assert_eq!(checksum(&a, false).unwrap(), checksum(&b, false).unwrap());
        let c = store(&[(b"Ex", b"1"), (b"Ey", b"3")]);
        assert_ne!(
            checksum(&a, false).unwrap().sha256,
            checksum(&c, false).unwrap().sha256
        );
        // Moving a byte from key to value is a different state.
        let d = store(&[(b"Ex", b"1"), (b"E", b"y2")]);
        assert_ne!(
            checksum(&a, false).unwrap().sha256,
            checksum(&d, false).unwrap().sha256
        );
    }

    #[test]
    fn a_result_sums_alike_in_either_form() {
        let r = crate::scorecard::ResultRecord {
            level: Some(0),
            score: 50,
            checks: vec![],
            groups: vec!["group:default/a".into()],
            system: None,
            domain: None,
            deps: vec![],
            next_change: None,
        };
        let k = crate::scorecard::records::result("card", "component:default/a");
        let compact = store(&[(&k, &r.encode())]);
        let object = store(&[(&k, &crate::records::encode(&r))]);
        assert_eq!(
            checksum(&compact, false).unwrap(),
            checksum(&object, false).unwrap()
        );
        let other = crate::scorecard::ResultRecord { score: 51, ..r };
        let changed = store(&[(&k, &crate::records::encode(&other))]);
        assert_ne!(
            checksum(&compact, false).unwrap().sha256,
            checksum(&changed, false).unwrap().sha256
        );
    }

    #[test]
    fn path_tables_count_only_when_asked() {
        let a = store(&[(b"Ex", b"1"), (b"a-one-path", b"p")]);
        let b = store(&[(b"Ex", b"1"), (b"a-another", b"q")]);
        let (sa, sb) = (checksum(&a, false).unwrap(), checksum(&b, false).unwrap());
        assert_eq!(sa.sha256, sb.sha256);
        assert_eq!((sa.keys, sa.skipped), (1, 1));
        assert_ne!(
            checksum(&a, true).unwrap().sha256,
            checksum(&b, true).unwrap().sha256
        );
    }
}
