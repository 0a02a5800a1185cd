//! What query and fetch routes report about the requests they served, and to whom: the
//! [`Recorder`] trait (search history implements it; the composition root hands it to the
//! routes that record), the search metadata headers ([`search_context`]) and how a document was
//! served ([`Served`]).

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::error::GatewayError;

/// Where a document came from, for `x-layer-cache`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    Hit,
    Miss,
    MissOnError,
}

impl Served {
    pub fn header(self) -> &'static str {
        match self {
            Served::Hit => "hit",
            Served::Miss => "miss",
            Served::MissOnError => "miss-on-error",
        }
    }

    /// The worse of two outcomes (a batch is a hit only when every document was).
    pub fn worst(self, other: Served) -> Served {
        match (self, other) {
            (Served::MissOnError, _) | (_, Served::MissOnError) => Served::MissOnError,
            (Served::Miss, _) | (_, Served::Miss) => Served::Miss,
            _ => Served::Hit,
        }
    }
}

/// One served query, as the recorder sees it.
pub struct QueryRecord<'a> {
    pub ns: &'a str,
    pub search: &'a SearchContext,
    pub trace: Option<&'a HeaderValue>,
    /// The request body as received (possibly gzip; the recorder inflates it off the shard).
    pub request: &'a Bytes,
    /// The gateway validated `request` whole (a v2 query the planner read): the recorder may
    /// read it by its structure alone. For a gzip body it was the inflated text that was
    /// validated; the recorder reads such a body strictly all the same.
    pub request_checked: bool,
    pub status: StatusCode,
    /// The answer, uncompressed.
    pub response: &'a Bytes,
    pub watermark: Option<u64>,
}

/// One served fetch (single or batch), as the recorder sees it.
pub struct FetchRecord<'a> {
    pub ns: &'a str,
    pub headers: &'a HeaderMap,
    /// The ids of the documents returned.
    pub ids: &'a [String],
    pub served: Served,
}

/// Receives what query and fetch routes served. Implementations must not block or fail the
/// request (queue and drop when full).
pub trait Recorder: Send + Sync {
    fn record_query(&self, r: QueryRecord<'_>);
    fn record_fetch(&self, r: FetchRecord<'_>);
}

/// Search metadata headers (`x-hevlayer-search-query`, `x-hevlayer-tags`), validated per the tag
/// contract: tags are trimmed, empties dropped, at most 128 bytes of `[A-Za-z0-9:_\-./=+]`,
/// deduplicated and sorted, at most 32.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SearchContext {
    pub raw_query: Option<String>,
    pub tags: Vec<String>,
}

/// The search query a client reports with a query (`x-hevlayer-search-query`).
const SEARCH_QUERY: HeaderName = HeaderName::from_static("x-hevlayer-search-query");
/// The tags a client files a query under (`x-hevlayer-tags`, comma-separated).
pub const TAGS: HeaderName = HeaderName::from_static("x-hevlayer-tags");

/// Reads and validates the search metadata headers (422 on an invalid tag). The names are
/// constants: a `&str` name is parsed and hashed again on every lookup (~430 instructions per
/// query for the two, `bench/profile.sh`).
pub fn search_context(headers: &HeaderMap) -> Result<SearchContext, GatewayError> {
    let raw_query = headers
        .get(SEARCH_QUERY)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .filter(|q| !q.is_empty());
    let mut tags: Vec<String> = Vec::new();
    for value in headers.get_all(TAGS) {
        for tag in String::from_utf8_lossy(value.as_bytes()).split(',') {
            let tag = tag.trim();
            if tag.is_empty() {
                continue;
            }
            if tag.len() > 128 {
                return Err(GatewayError::Validation(format!(
                    "tag {tag:?} is longer than 128 bytes"
                )));
            }
            if !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":_-./=+".contains(&b))
            {
                return Err(GatewayError::Validation(format!(
                    "tag {tag:?} has a character outside ASCII letters, digits and : _ - . / = +"
                )));
            }
            tags.push(tag.to_string());
        }
    }
    tags.sort();
    tags.dedup();
    if tags.len() > 32 {
        return Err(GatewayError::Validation(format!(
            "at most 32 tags are allowed, got {}",
            tags.len()
        )));
    }
    Ok(SearchContext { raw_query, tags })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalised_and_validated() {
        let mut h = HeaderMap::new();
        h.append("x-hevlayer-tags", HeaderValue::from_static(" b, a ,,a"));
        h.append("x-hevlayer-tags", HeaderValue::from_static("c"));
        assert_eq!(search_context(&h).unwrap().tags, ["a", "b", "c"]);
        let mut bad = HeaderMap::new();
        bad.insert("x-hevlayer-tags", HeaderValue::from_static("a b"));
        assert!(search_context(&bad).is_err());
        assert_eq!(Served::Hit.worst(Served::Miss), Served::Miss);
    }
}
