//! Versioned envelopes. Every message on every topic and every stored record
//! is JSON of the shape `{"schema": "...", "version": N, ...fields}`.
//! Readers decode only the versions they know; an unknown version is a
//! distinct error so callers can count and skip it instead of misreading it.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Why bytes could not be decoded as a message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a {expected} message: schema is {found:?}")]
    WrongSchema {
        expected: &'static str,
        found: String,
    },
    #[error("{schema} version {found} is not known to this reader (knows {known})")]
    UnknownVersion {
        schema: &'static str,
        found: u64,
        known: u32,
    },
    #[error("malformed {schema} message: {source}")]
    Malformed {
        schema: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Serialize)]
struct WireOut<'a, T> {
    schema: &'static str,
    version: u32,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Deserialize)]
struct Probe {
    schema: String,
    version: u64,
}

#[derive(Deserialize)]
struct WireIn<T> {
    #[serde(flatten)]
    body: T,
}

/// A message type with a schema name and a current version.
pub trait Versioned: Serialize + DeserializeOwned {
    /// Stable schema name, e.g. `catalog.observation`.
    const SCHEMA: &'static str;
    /// The version this build writes and reads.
    const VERSION: u32;

    /// About how many bytes [`Versioned::encode`] writes, for a message
    /// that may be large (an observation carries a whole file): its buffer
    /// is made that long at once rather than grown by doubling, which
    /// held the old buffer and the new one together (128 and 256 MB for a
    /// 72 MB file). Room never written to costs address space only.
    fn encoded_len_hint(&self) -> usize {
        0
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint().saturating_add(256));
        serde_json::to_writer(
            &mut out,
            &WireOut {
                schema: Self::SCHEMA,
                version: Self::VERSION,
                body: self,
            },
        )
        .expect("message types serialise infallibly");
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        check::<Self>(bytes)?;
        let malformed = |source| DecodeError::Malformed {
            schema: Self::SCHEMA,
            source,
        };
        let wire: WireIn<Self> = serde_json::from_slice(bytes).map_err(malformed)?;
        Ok(wire.body)
    }
}

/// Checks that `bytes` are a message of `T`'s schema in the version this
/// build reads, before they are decoded (whole, or in some other shape).
pub fn check<T: Versioned>(bytes: &[u8]) -> Result<(), DecodeError> {
    let probe: Probe = serde_json::from_slice(bytes).map_err(|source| DecodeError::Malformed {
        schema: T::SCHEMA,
        source,
    })?;
    if probe.schema != T::SCHEMA {
        return Err(DecodeError::WrongSchema {
            expected: T::SCHEMA,
            found: probe.schema,
        });
    }
    if probe.version != u64::from(T::VERSION) {
        return Err(DecodeError::UnknownVersion {
            schema: T::SCHEMA,
            found: probe.version,
            known: T::VERSION,
        });
    }
    Ok(())
}
