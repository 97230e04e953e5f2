//! Messages larger than a backend's message limit travel in parts.
//!
//! A location may hold tens of megabytes (an HR export of every user in one
//! file) and yield hundreds of thousands of entities, while a Kafka broker
//! accepts 1 MB per message by default. A backend with a limit therefore
//! splits a message that does not fit into parts followed by a manifest,
//! all on the partition of the message's key, in this order:
//!
//! - part `i` of `n`: key `{key}\0part\0{i}`, value
//!   `\0cp1` + set id (16 bytes) + `i` + `n` (u32 big-endian) + bytes;
//! - the manifest: key `{key}`, value `\0cm1` + set id + `n` + total length
//!   (u64) + SHA-256 of the whole value.
//!
//! The set id is the first 16 bytes of the value's SHA-256, so sending one
//! value twice sends the same bytes twice. Part keys differ per index so
//! that a compacted topic keeps the latest write of every part next to the
//! latest manifest (parts of a shorter rewrite's old tail stay behind as
//! bounded garbage and are dropped by readers). Values that the stages
//! write are JSON and never start with a zero byte, so the framing cannot
//! be mistaken for a message.
//!
//! Readers hand out whole records only: an [`Assembler`] keeps parts until
//! their manifest arrives and delivers the whole value at the manifest's
//! offset. Each record carries the offset to resume from after it
//! ([`crate::Record::next`]), which stays at the first part of any message
//! still half read, so a consumer that stores or commits it never skips a
//! part: exactly-once effect and at-least-once delivery hold across parts.

use crate::Record;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const PART_MAGIC: &[u8; 4] = b"\0cp1";
const MANIFEST_MAGIC: &[u8; 4] = b"\0cm1";
const PART_HEADER: usize = 4 + 16 + 4 + 4;
const MANIFEST_LEN: usize = 4 + 16 + 4 + 8 + 32;
/// Room left in every message for the record's own framing (headers,
/// timestamps, batch overhead).
pub const OVERHEAD: usize = 4096;

/// One message to append: key and value.
pub type Piece = (Vec<u8>, Vec<u8>);

/// The key of part `index` of a message keyed `key`.
pub fn part_key(key: &[u8], index: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 16);
    k.extend_from_slice(key);
    k.extend_from_slice(b"\0part\0");
    k.extend_from_slice(index.to_string().as_bytes());
    k
}

/// Splits a message into parts and a manifest when key and value exceed
/// `limit` bytes (minus [`OVERHEAD`]); `None` when it fits whole.
pub fn split(key: &[u8], value: &[u8], limit: usize) -> Option<Vec<Piece>> {
    let room = limit.saturating_sub(OVERHEAD);
    if key.len() + value.len() <= room {
        return None;
    }
    // Each part's key is the message key plus a short suffix.
    let data = room.saturating_sub(key.len() + 32 + PART_HEADER).max(1024);
    let digest: [u8; 32] = Sha256::digest(value).into();
    let set = &digest[..16];
    let count = value.len().div_ceil(data);
    let count32 = u32::try_from(count).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(count + 1);
    for (i, chunk) in value.chunks(data).enumerate() {
        let i = i as u32;
        let mut v = Vec::with_capacity(PART_HEADER + chunk.len());
        v.extend_from_slice(PART_MAGIC);
        v.extend_from_slice(set);
        v.extend_from_slice(&i.to_be_bytes());
        v.extend_from_slice(&count32.to_be_bytes());
        v.extend_from_slice(chunk);
        out.push((part_key(key, i), v));
    }
    let mut m = Vec::with_capacity(MANIFEST_LEN);
    m.extend_from_slice(MANIFEST_MAGIC);
    m.extend_from_slice(set);
    m.extend_from_slice(&count32.to_be_bytes());
    m.extend_from_slice(&(value.len() as u64).to_be_bytes());
    m.extend_from_slice(&digest);
    out.push((key.to_vec(), m));
    Some(out)
}

/// What a record is, as far as the framing goes.
enum Frame<'a> {
    Whole,
    Part {
        base: &'a [u8],
        set: [u8; 16],
        index: u32,
        count: u32,
        data: &'a [u8],
    },
    Manifest {
        set: [u8; 16],
        count: u32,
        len: u64,
        digest: [u8; 32],
    },
}

fn frame<'a>(key: &'a [u8], value: &'a [u8]) -> Frame<'a> {
    if value.starts_with(PART_MAGIC) && value.len() >= PART_HEADER {
        let set: [u8; 16] = value[4..20].try_into().unwrap_or_default();
        let index = u32::from_be_bytes(value[20..24].try_into().unwrap_or_default());
        let count = u32::from_be_bytes(value[24..28].try_into().unwrap_or_default());
        let suffix = part_key(b"", index);
        if let Some(base) = key.strip_suffix(suffix.as_slice())
            && index < count
        {
            return Frame::Part {
                base,
                set,
                index,
                count,
                data: &value[PART_HEADER..],
            };
        }
    } else if value.starts_with(MANIFEST_MAGIC) && value.len() == MANIFEST_LEN {
        let set: [u8; 16] = value[4..20].try_into().unwrap_or_default();
        let count = u32::from_be_bytes(value[20..24].try_into().unwrap_or_default());
        let len = u64::from_be_bytes(value[24..32].try_into().unwrap_or_default());
        let digest: [u8; 32] = value[32..64].try_into().unwrap_or_default();
        return Frame::Manifest {
            set,
            count,
            len,
            digest,
        };
    }
    Frame::Whole
}

/// Parts of one message seen so far.
struct Pending {
    set: [u8; 16],
    first_offset: i64,
    last_offset: i64,
    parts: Vec<Option<Vec<u8>>>,
    received: usize,
    bytes: usize,
}

/// Reassembles parted messages, per partition and key.
#[derive(Default)]
pub struct Assembler {
    /// (partition, key) -> the sets being received for that key.
    pending: HashMap<(u32, Vec<u8>), Vec<Pending>>,
    bytes: usize,
}

impl Assembler {
    /// Takes one record as read; returns what to hand out (a whole record,
    /// or a reassembled one at its manifest's offset), or `None` while
    /// parts are outstanding (and for a manifest whose parts are lost,
    /// which is logged).
    pub fn accept(&mut self, mut record: Record) -> Option<Record> {
        let delivered = match frame(&record.key, &record.value) {
            Frame::Whole => {
                self.drop_before(record.partition, &record.key, record.offset);
                Some(record)
            }
            Frame::Part {
                base,
                set,
                index,
                count,
                data,
            } => {
                let slot = (record.partition, base.to_vec());
                let sets = self.pending.entry(slot).or_default();
                let i = match sets.iter().position(|p| p.set == set) {
                    Some(i) => i,
                    None => {
                        sets.push(Pending {
                            set,
                            first_offset: record.offset,
                            last_offset: record.offset,
                            parts: vec![None; count as usize],
                            received: 0,
                            bytes: 0,
                        });
                        sets.len() - 1
                    }
                };
                let p = &mut sets[i];
                p.last_offset = p.last_offset.max(record.offset);
                p.first_offset = p.first_offset.min(record.offset);
                if let Some(slot) = p.parts.get_mut(index as usize)
                    && slot.is_none()
                {
                    p.received += 1;
                    p.bytes += data.len();
                    self.bytes += data.len();
                    *slot = Some(data.to_vec());
                }
                None
            }
            Frame::Manifest {
                set,
                count,
                len,
                digest,
            } => {
                let key = record.key.clone();
                let slot = (record.partition, key.clone());
                let taken = self.pending.get_mut(&slot).and_then(|sets| {
                    let i = sets.iter().position(|p| p.set == set)?;
                    Some(sets.swap_remove(i))
                });
                if let Some(p) = &taken {
                    self.bytes -= p.bytes;
                }
                let whole = taken.and_then(|p| {
                    let first = p.first_offset;
                    (p.received == count as usize && p.parts.len() == count as usize)
                        .then(|| {
                            p.parts
                                .into_iter()
                                .flatten()
                                .collect::<Vec<Vec<u8>>>()
                                .concat()
                        })
                        .map(|v| (v, first))
                });
                match whole {
                    Some((value, first))
                        if value.len() as u64 == len
                            && <[u8; 32]>::from(Sha256::digest(&value)) == digest =>
                    {
                        self.drop_before(record.partition, &key, first);
                        record.value = value;
                        Some(record)
                    }
                    _ => {
                        tracing::error!(
                            topic = %record.topic,
                            partition = record.partition,
                            offset = record.offset,
                            key = %String::from_utf8_lossy(&key),
                            "a message sent in parts is incomplete or corrupt at its manifest; skipped"
                        );
                        self.drop_before(record.partition, &key, record.offset);
                        None
                    }
                }
            }
        };
        delivered.map(|mut r| {
            r.next = self.resume(r.partition, r.offset + 1);
            r
        })
    }

    /// Where to resume `partition` after everything up to `next`: `next`,
    /// or the first part of a message still half read.
    pub fn resume(&self, partition: u32, next: i64) -> i64 {
        self.pending
            .iter()
            .filter(|((p, _), _)| *p == partition)
            .flat_map(|(_, sets)| sets.iter().map(|s| s.first_offset))
            .fold(next, i64::min)
    }

    /// Forgets the parts of partitions this reader no longer reads.
    pub fn retain_partitions(&mut self, keep: impl Fn(u32) -> bool) {
        let mut freed = 0;
        self.pending.retain(|(p, _), sets| {
            let k = keep(*p);
            if !k {
                freed += sets.iter().map(|s| s.bytes).sum::<usize>();
            }
            k
        });
        self.bytes -= freed;
    }

    /// Bytes of parts held.
    pub fn held_bytes(&self) -> usize {
        self.bytes
    }

    /// A later message of `key` supersedes sets that were complete or
    /// abandoned before `offset`: their last part came before it. (A set
    /// still receiving parts after that point belongs to a concurrent
    /// writer and is kept.)
    fn drop_before(&mut self, partition: u32, key: &[u8], offset: i64) {
        let slot = (partition, key.to_vec());
        if let Some(sets) = self.pending.get_mut(&slot) {
            let mut freed = 0;
            sets.retain(|p| {
                let keep = p.last_offset >= offset;
                if !keep {
                    freed += p.bytes;
                }
                keep
            });
            self.bytes -= freed;
            if sets.is_empty() {
                self.pending.remove(&slot);
            }
        }
    }
}

/// Kafka's key hash (murmur2, as the Java client's default partitioner
/// and librdkafka's `murmur2_random` compute it).
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition Kafka's default partitioner picks for a (non-empty) key.
pub fn kafka_partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(partition: u32, offset: i64, key: &[u8], value: &[u8]) -> Record {
        Record {
            topic: "t".into(),
            partition,
            offset,
            key: key.to_vec(),
            value: value.to_vec(),
            timestamp_ms: 0,
            next: offset + 1,
        }
    }

    fn big(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn murmur2_matches_kafkas_reference_values() {
        for (key, want) in [
            (&b"21"[..], -973_932_308_i32),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ] {
            assert_eq!(
                murmur2(key) as i32,
                want,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn small_messages_are_not_split() {
        assert!(split(b"k", &[b'{'; 100], 10_000).is_none());
    }

    #[test]
    fn a_split_message_reassembles_at_its_manifest_offset() {
        let value = big(50_000, 1);
        let pieces = split(b"file:/a", &value, 10_000).unwrap();
        assert!(pieces.len() > 5);
        assert!(
            pieces
                .iter()
                .all(|(k, v)| k.len() + v.len() <= 10_000 - OVERHEAD)
        );
        let mut a = Assembler::default();
        let mut out = Vec::new();
        for (i, (k, v)) in pieces.iter().enumerate() {
            out.extend(a.accept(rec(0, 100 + i as i64, k, v)));
            if i + 1 < pieces.len() {
                assert_eq!(a.resume(0, 100 + i as i64 + 1), 100);
            }
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key, b"file:/a");
        assert_eq!(out[0].value, value);
        assert_eq!(out[0].offset, 100 + pieces.len() as i64 - 1);
        assert_eq!(out[0].next, out[0].offset + 1);
        assert_eq!(a.held_bytes(), 0);
    }

    #[test]
    fn a_record_delivered_while_parts_are_pending_resumes_at_the_first_part() {
        let value = big(30_000, 2);
        let pieces = split(b"big", &value, 10_000).unwrap();
        let mut a = Assembler::default();
        assert!(a.accept(rec(0, 10, &pieces[0].0, &pieces[0].1)).is_none());
        let small = a.accept(rec(0, 11, b"small", b"{}")).unwrap();
        assert_eq!(small.next, 10);
        // Another partition is not held back.
        let other = a.accept(rec(1, 5, b"x", b"{}")).unwrap();
        assert_eq!(other.next, 6);
        let mut off = 12;
        let mut got = None;
        for (k, v) in &pieces[1..] {
            got = got.or(a.accept(rec(0, off, k, v)));
            off += 1;
        }
        assert_eq!(got.unwrap().value, value);
        assert_eq!(a.resume(0, off), off);
    }

    #[test]
    fn a_missing_part_skips_the_message_and_releases_the_resume_point() {
        let value = big(30_000, 3);
        let pieces = split(b"k", &value, 10_000).unwrap();
        let mut a = Assembler::default();
        for (i, (k, v)) in pieces.iter().enumerate() {
            if i == 1 {
                continue;
            }
            assert!(a.accept(rec(0, i as i64, k, v)).is_none());
        }
        assert_eq!(a.resume(0, 1000), 1000);
        assert_eq!(a.held_bytes(), 0);
    }

    #[test]
    fn a_corrupt_part_fails_the_digest() {
        let value = big(30_000, 4);
        let mut pieces = split(b"k", &value, 10_000).unwrap();
        let last = pieces[0].1.len() - 1;
        pieces[0].1[last] ^= 1;
        let mut a = Assembler::default();
        let out: Vec<_> = pieces
            .iter()
            .enumerate()
            .filter_map(|(i, (k, v))| a.accept(rec(0, i as i64, k, v)))
            .collect();
        assert!(out.is_empty());
    }

    #[test]
    fn stale_parts_of_an_older_longer_write_are_dropped_by_the_next_manifest() {
        // What a compacted topic keeps after a long write was replaced by a
        // shorter one: the old write's tail parts, then the new write.
        let old = big(60_000, 5);
        let new = big(25_000, 6);
        let old_pieces = split(b"k", &old, 10_000).unwrap();
        let new_pieces = split(b"k", &new, 10_000).unwrap();
        let tail = &old_pieces[new_pieces.len() - 1..old_pieces.len() - 1];
        let mut a = Assembler::default();
        let mut off = 0;
        let mut out = Vec::new();
        for (k, v) in tail.iter().chain(new_pieces.iter()) {
            out.extend(a.accept(rec(0, off, k, v)));
            off += 1;
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value, new);
        assert_eq!(a.resume(0, off), off, "stale parts no longer hold back");
        assert_eq!(a.held_bytes(), 0);
    }

    #[test]
    fn parts_read_twice_after_a_rewind_are_counted_once() {
        let value = big(30_000, 7);
        let pieces = split(b"k", &value, 10_000).unwrap();
        let mut a = Assembler::default();
        a.accept(rec(0, 0, &pieces[0].0, &pieces[0].1));
        a.accept(rec(0, 0, &pieces[0].0, &pieces[0].1));
        let mut out = Vec::new();
        for (i, (k, v)) in pieces.iter().enumerate() {
            out.extend(a.accept(rec(0, i as i64, k, v)));
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value, value);
    }

    #[test]
    fn forgetting_a_partition_frees_its_parts() {
        let value = big(30_000, 8);
        let pieces = split(b"k", &value, 10_000).unwrap();
        let mut a = Assembler::default();
        a.accept(rec(3, 0, &pieces[0].0, &pieces[0].1));
        assert!(a.held_bytes() > 0);
        a.retain_partitions(|p| p != 3);
        assert_eq!(a.held_bytes(), 0);
        assert_eq!(a.resume(3, 9), 9);
    }
}
