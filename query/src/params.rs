//! Query-string parameters as Backstage reads them: repeatable keys, the
//! same messages for bad input, and the opaque cursors of paged lists.

use crate::error::ApiError;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use base64::Engine;
use projector::EntityFilter;
use serde::{Serialize, de::DeserializeOwned};

/// Every `key=value` pair of the query string, decoded, in order.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    raw: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::Input(format!("Invalid query string: {e}")))?;
        Ok(Params {
            pairs,
            raw: parts.uri.query().unwrap_or_default().to_string(),
        })
    }
}

impl Params {
    /// All values of a repeatable parameter.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The values of a repeatable, comma-separated parameter, trimmed,
    /// empty ones dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// A parameter that may appear once.
    pub fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.pairs.iter().filter(|(k, _)| k == name);
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some((_, v)), None) => Ok(Some(v)),
            (Some(_), Some(_)) => Err(ApiError::Input(format!(
                "Invalid {name}, expected a single value"
            ))),
        }
    }

    /// An integer parameter at least `min`.
    pub fn int(&self, name: &str, min: usize) -> Result<Option<usize>, ApiError> {
        let Some(v) = self.one(name)? else {
            return Ok(None);
        };
        let n: i64 = v
            .parse()
            .map_err(|_| ApiError::Input(format!("Invalid {name}, not an integer")))?;
        if n < min as i64 {
            return Err(ApiError::Input(match min {
                0 => format!("Invalid {name}, must be zero or greater"),
                _ => format!("Invalid {name}, must be greater than zero"),
            }));
        }
        usize::try_from(n)
            .map(Some)
            .map_err(|_| ApiError::Input(format!("Invalid {name}, too large")))
    }

    /// The raw query string with the given parameters removed and
    /// `name=value` appended (`value` must not need escaping).
    pub fn replaced(&self, drop: &[&str], name: &str, value: &str) -> String {
        let mut kept: Vec<&str> = self
            .raw
            .split('&')
            .filter(|seg| {
                let key = seg.split('=').next().unwrap_or_default();
                !seg.is_empty() && !drop.contains(&key) && key != name
            })
            .collect();
        let last = format!("{name}={value}");
        kept.push(&last);
        kept.join("&")
    }

    /// The `filter` parameters (OR'ed; see [`EntityFilter`]).
    pub fn filter(&self) -> Result<Option<EntityFilter>, ApiError> {
        parse_filter(&self.all("filter"))
    }

    /// The `fields` projection, if any.
    pub fn fields(&self) -> Result<Option<Vec<String>>, ApiError> {
        fields(self.list("fields"))
    }
}

/// Path parameters, with a rejection in the API's error shape.
pub struct PathArgs<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathArgs(p.0))
            .map_err(|e| ApiError::Input(format!("Invalid path: {}", e.body_text())))
    }
}

pub fn parse_filter(filters: &[String]) -> Result<Option<EntityFilter>, ApiError> {
    EntityFilter::parse(filters)
        .map_err(|e| ApiError::Input(format!("Invalid filter parameter: {e}")))
}

/// Validates `fields` paths; `None` when there are none.
pub fn fields(fields: Vec<String>) -> Result<Option<Vec<String>>, ApiError> {
    if fields.iter().any(|f| f.contains('[')) {
        return Err(ApiError::Input(
            "Invalid fields, array type fields are not supported".into(),
        ));
    }
    Ok((!fields.is_empty()).then_some(fields))
}

pub use projector::order::{Direction, OrderField};

/// `/entities`' `order=asc:metadata.name`.
pub fn order_params(values: &[String]) -> Result<Vec<OrderField>, ApiError> {
    values
        .iter()
        .map(|item| {
            let parsed = item.split_once(':').and_then(|(dir, field)| {
                let field = field.trim();
                (!field.is_empty()).then_some((Direction::parse(dir)?, field))
            });
            match parsed {
                Some((order, field)) => Ok(OrderField {
                    field: field.to_lowercase(),
                    order,
                }),
                None => Err(ApiError::Input(format!(
                    "Invalid order parameter \"{item}\", expected \"<asc or desc>:<field name>\""
                ))),
            }
        })
        .collect()
}

/// `/entities/by-query`'s `orderField=metadata.name,desc` (direction
/// optional, ascending by default).
pub fn order_field_params(values: &[String]) -> Result<Vec<OrderField>, ApiError> {
    values
        .iter()
        .map(|item| {
            let (field, dir) = match item.split_once(',') {
                Some((f, d)) => (f.trim(), Some(d)),
                None => (item.trim(), None),
            };
            if field.is_empty() {
                return Err(ApiError::Input(format!(
                    "Invalid orderField \"{item}\", the field is empty"
                )));
            }
            let order = match dir {
                None => Direction::Asc,
                Some(d) => Direction::parse(d).ok_or_else(|| {
                    ApiError::Input(format!(
                        "Invalid orderField \"{item}\", the order must be asc or desc"
                    ))
                })?,
            };
            Ok(OrderField {
                field: field.to_lowercase(),
                order,
            })
        })
        .collect()
}

/// Cursors are base64 of JSON, as Backstage's (opaque to clients; a
/// client URL-encodes them in a query string).
pub fn encode_cursor<T: Serialize>(cursor: &T) -> String {
    let json = serde_json::to_vec(cursor).expect("cursors serialise");
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// Decodes a cursor of [`encode_cursor`]: base64 of JSON, as Backstage's
/// (standard or URL-safe alphabet, padded or not; a `+` that arrived as a
/// space in an unencoded query string is taken back). `what` names the
/// parameter.
pub fn decode_cursor<T: DeserializeOwned>(s: &str, what: &str) -> Result<T, ApiError> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let malformed = |why: String| ApiError::Input(format!("Malformed {what}: {why}"));
    if s.is_empty() {
        return Err(malformed("empty".into()));
    }
    let text = s.trim_end_matches('=').replace(' ', "+");
    let bytes = STANDARD_NO_PAD
        .decode(&text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(&text))
        .map_err(|_| malformed("not base64".into()))?;
    serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use projector::order::SortKey;

    fn key(values: &[Option<&str>], r: &str) -> SortKey {
        SortKey {
            values: values.iter().map(|v| v.map(str::to_string)).collect(),
            refkey: r.into(),
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let k = key(&[Some("a b"), None], "component:default/x");
        let s = encode_cursor(&k);
        // Base64 of the JSON, as Backstage's cursors.
        let json = base64::engine::general_purpose::STANDARD
            .decode(&s)
            .unwrap();
        assert_eq!(serde_json::from_slice::<SortKey>(&json).unwrap(), k);
        assert_eq!(decode_cursor::<SortKey>(&s, "cursor").unwrap(), k);
        // As it arrives from a query string nobody encoded: `+` as a space,
        // padding dropped; or in the URL-safe alphabet.
        let sloppy = s.replace('+', " ").trim_end_matches('=').to_string();
        assert_eq!(decode_cursor::<SortKey>(&sloppy, "cursor").unwrap(), k);
        let url_safe = s.replace('+', "-").replace('/', "_");
        assert_eq!(decode_cursor::<SortKey>(&url_safe, "cursor").unwrap(), k);
        for bad in ["", "abc", "!!", "e30", "W10="] {
            let err = decode_cursor::<SortKey>(bad, "cursor").unwrap_err();
            assert!(
                err.to_string().starts_with("Malformed cursor"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn order_parameters_validate() {
        assert_eq!(
            order_params(&["desc:Metadata.Name".into()]).unwrap(),
            vec![OrderField {
                field: "metadata.name".into(),
                order: Direction::Desc
            }]
        );
        for bad in ["metadata.name", "up:metadata.name", "asc:"] {
            assert!(
                order_params(&[bad.into()])
                    .unwrap_err()
                    .to_string()
                    .contains("order")
            );
        }
        assert!(order_field_params(&["metadata.name,sideways".into()]).is_err());
    }

    #[test]
    fn replaced_drops_and_appends() {
        let p = Params {
            pairs: vec![],
            raw: "filter=kind%3Dcomponent&offset=3&limit=2&after=old".into(),
        };
        assert_eq!(
            p.replaced(&["offset"], "after", "abc"),
            "filter=kind%3Dcomponent&limit=2&after=abc"
        );
    }
}
