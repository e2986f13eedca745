//! `?limit=&cursor=` lists: keyset pagination with an opaque cursor.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::AppError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub fn limit(requested: Option<i64>) -> Result<i64, AppError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(AppError::field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// A `?status=` filter: absent, or one of `allowed` (422 naming the choices otherwise).
pub fn status_filter<T: Copy>(
    raw: Option<&str>,
    allowed: &[T],
    name: fn(T) -> &'static str,
) -> Result<Option<T>, AppError> {
    match raw {
        None => Ok(None),
        Some(s) => match allowed.iter().find(|v| name(**v) == s) {
            Some(v) => Ok(Some(*v)),
            None => Err(AppError::field(
                "status",
                format!(
                    "must be one of {}",
                    allowed
                        .iter()
                        .map(|v| name(*v))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        },
    }
}

/// The cursor is the sort key of the last item returned: `(instant ms, id)`.
pub fn encode_cursor(at_ms: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{at_ms}:{id}"))
}

pub fn decode_cursor(cursor: Option<&str>) -> Result<Option<(i64, String)>, AppError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let invalid = || AppError::field("cursor", "is not a cursor this API returned");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (at, id) = text.split_once(':').ok_or_else(invalid)?;
    let at = at.parse().map_err(|_| invalid())?;
    uuid::Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok(Some((at, id.to_owned())))
}

/// `next_cursor` for a page that came back full (there may be more).
pub fn next_cursor<T>(items: &[T], limit: i64, key: impl Fn(&T) -> (i64, &str)) -> Option<String> {
    if (items.len() as i64) < limit {
        return None;
    }
    items.last().map(|last| {
        let (at, id) = key(last);
        encode_cursor(at, id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let id = uuid::Uuid::new_v4().to_string();
        let c = encode_cursor(1234, &id);
        assert_eq!(decode_cursor(Some(&c)).unwrap(), Some((1234, id)));
        for bad in ["", "!!!", "bm90aGluZw", &URL_SAFE_NO_PAD.encode("12:x")] {
            assert!(decode_cursor(Some(bad)).is_err(), "{bad}");
        }
        assert!(limit(Some(0)).is_err() && limit(Some(501)).is_err());
        assert_eq!(limit(None).unwrap(), 50);
    }
}
