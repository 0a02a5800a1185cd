//! The two record shapes on the wire and in storage — one JSON object per JSONL line, exactly
//! what the list routes return (hevlayer `SearchHistoryEntry` and `ClickstreamEvent`) — plus the
//! helpers both feeds share: timestamps, trace ids and object keys.
//!
//! Storage layout (one object per flushed batch, never rewritten):
//! `{feed}/{namespace}/{YYYY-MM-DD}/{timestamp_nanos}.jsonl`, where `timestamp_nanos` is the
//! **newest** entry of the batch and the date is that entry's UTC date. A batch never spans more
//! than [`MAX_BATCH_SPAN_NANOS`] (the writer enforces it), so from an object's name alone a
//! reader knows every entry in it lies in `[name - MAX_BATCH_SPAN_NANOS, name]`; that is what lets
//! the listing skip objects and stop early even when several gateways write the same prefix.

use chrono::{DateTime, Datelike, Timelike, Utc};
use compact_str::CompactString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The widest time range one stored batch may cover. Part of the storage format: readers rely on
/// it, so changing it means old objects may be read with the wrong bound.
pub const MAX_BATCH_SPAN_NANOS: u64 = 60_000_000_000;

/// Which feed a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feed {
    SearchHistory,
    Clickstream,
}

impl Feed {
    /// The first segment of the feed's object keys.
    pub fn prefix(self) -> &'static str {
        match self {
            Feed::SearchHistory => "search-history",
            Feed::Clickstream => "clickstream",
        }
    }

    /// The counter of the feed's events (`outcome` = `written`, `dropped`, `retried` or `failed`).
    pub fn metric(self) -> &'static str {
        match self {
            Feed::SearchHistory => "layer_search_history_events_total",
            Feed::Clickstream => "layer_clickstream_events_total",
        }
    }

    /// The gauge of the feed's records held for a retry after a failed batch write.
    pub fn pending_metric(self) -> &'static str {
        match self {
            Feed::SearchHistory => "layer_search_history_pending_entries",
            Feed::Clickstream => "layer_clickstream_pending_entries",
        }
    }

    /// The counter of the feed's objects (`outcome` = `written` or `failed`); written events
    /// over written objects is the batching factor.
    pub fn object_metric(self) -> &'static str {
        match self {
            Feed::SearchHistory => "layer_search_history_objects_total",
            Feed::Clickstream => "layer_clickstream_objects_total",
        }
    }

    /// The key of the list response's array.
    pub fn list_key(self) -> &'static str {
        match self {
            Feed::SearchHistory => "entries",
            Feed::Clickstream => "events",
        }
    }
}

/// One served query (hevlayer `SearchHistoryEntry`; every required field is always present).
/// The short text fields are held inline (a timestamp and most namespaces fit in 24 bytes, a
/// trace id in its 32 digits): one entry is written per query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchEntry {
    pub timestamp: CompactString,
    pub timestamp_nanos: u64,
    pub namespace: CompactString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_as_of: Option<u64>,
    pub query: QuerySummary,
    pub top_result_ids: ResultIds,
    pub tags: Vec<String>,
}

impl SearchEntry {
    /// The entry as one JSON object (its stored line, without the newline), appended to `out`:
    /// the JSON its `Serialize` gives, written without serde, so the summary's texts go in as
    /// they are instead of being parsed again (a unit test and a property test compare the two).
    pub fn write_json(&self, out: &mut String) {
        out.push_str("{\"timestamp\":");
        push_json_str(out, &self.timestamp);
        out.push_str(",\"timestamp_nanos\":");
        push_u64(out, self.timestamp_nanos);
        out.push_str(",\"namespace\":");
        push_json_str(out, &self.namespace);
        if let Some(t) = &self.trace_id {
            out.push_str(",\"trace_id\":");
            push_json_str(out, t.as_str());
        }
        if let Some(q) = &self.raw_query {
            out.push_str(",\"raw_query\":");
            push_json_str(out, q);
        }
        if let Some(w) = self.stable_as_of {
            out.push_str(",\"stable_as_of\":");
            push_u64(out, w);
        }
        out.push_str(",\"query\":");
        out.push_str(self.query.get());
        out.push_str(",\"top_result_ids\":");
        out.push_str(self.top_result_ids.get());
        out.push_str(",\"tags\":[");
        for (i, tag) in self.tags.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(out, tag);
        }
        out.push_str("]}");
    }
}

/// `n` in decimal (`write!` costs its formatter's machinery, ~350 instructions per number).
fn push_u64(out: &mut String, n: u64) {
    let mut digits = [0; 20];
    out.push_str(std::str::from_utf8(scatter::write::decimal(n, &mut digits)).unwrap_or_default());
}

/// `s` as a JSON string: copied between quotes when nothing in it needs escaping (every key the
/// summary writes, most namespaces and ids), else through scatter's encoder.
pub fn push_json_str(out: &mut String, s: &str) {
    // One pass without branches (it vectorises; a short-circuiting `all` went byte by byte).
    let plain = !s.bytes().fold(false, |bad, b| {
        bad | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&scatter::page::json_str(s));
    }
}

/// JSON text kept and written verbatim: a search entry's `query` summary (an object, built by
/// [`super::summary`] straight from the request's members) and its `top_result_ids` (an array
/// of strings, written from the answer's row ids). No value tree and no `String` per id is built
/// per query or freed when the entry leaves the recent window.
///
/// The text is JSON by construction: the summary builder copies only values that were checked
/// whole before, by the query planner's validation of the request or by a strict walk
/// ([`scatter::raw`] checks every value as a strict parser would), and writes every key and id
/// through [`push_json_str`]. Debug builds (every test) check each text as it is made; the
/// property tests in [`super::summary`] check that any body pair gives JSON. Serializing through
/// serde (the list routes, a few entries per call) checks it again; a stored line is written by
/// [`SearchEntry::write_json`] without a second parse.
#[derive(Clone, Debug)]
pub struct JsonText(Box<str>);

/// A search entry's `query` summary: a JSON object's text.
pub type QuerySummary = JsonText;

/// A search entry's `top_result_ids`: a JSON array of strings, in rank order.
pub type ResultIds = JsonText;

impl JsonText {
    /// Text the summary builder wrote (JSON by construction, see the type; not checked in a
    /// release build), copied once into an exactly sized buffer. Line breaks become spaces: a
    /// member copied as the caller wrote it may be spread over lines (JSON allows a line break
    /// only between tokens, never raw inside a string), and a stored record must be one line.
    pub(super) fn built(text: &str) -> Self {
        debug_assert!(
            serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(),
            "the summary builder wrote text that is not JSON: {text}"
        );
        // One pass without branches (it vectorises); the copy is made only when needed.
        let broken = text
            .bytes()
            .fold(false, |any, b| any | (b == b'\n') | (b == b'\r'));
        if broken {
            return JsonText(text.replace(['\n', '\r'], " ").into_boxed_str());
        }
        JsonText(text.into())
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }
}

impl Serialize for JsonText {
    /// As the JSON it holds (serde_json writes a raw value verbatim, `to_value` parses it).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(|raw| JsonText(raw.into()))
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// One fetched document carrying a search's trace context (hevlayer `ClickstreamEvent`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClickEvent {
    pub timestamp: CompactString,
    pub timestamp_nanos: u64,
    pub trace_id: TraceId,
    pub namespace: CompactString,
    pub doc_id: String,
    pub tags: Vec<String>,
    /// `fetch` (single or batch document fetch).
    pub source: String,
    /// `cache` on a cache hit, `origin` otherwise.
    pub served_from: String,
}

/// What the window and the listing need from either record shape.
pub trait Record: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    const FEED: Feed;
    fn nanos(&self) -> u64;
    fn tags(&self) -> &[String];
    fn trace_id(&self) -> Option<&str>;
    /// Tells two records with the same timestamp apart (gateways stamp independently).
    fn discriminator(&self) -> &str;
    /// Appends the record's stored line (its JSON and a newline) to `body`; `false` (nothing
    /// appended) when it cannot be written. `scratch` is a buffer to reuse.
    fn write_line(&self, body: &mut Vec<u8>, scratch: &mut String) -> bool;
}

impl Record for SearchEntry {
    const FEED: Feed = Feed::SearchHistory;
    fn nanos(&self) -> u64 {
        self.timestamp_nanos
    }
    fn tags(&self) -> &[String] {
        &self.tags
    }
    fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_ref().map(TraceId::as_str)
    }
    fn discriminator(&self) -> &str {
        self.trace_id.as_ref().map_or("", TraceId::as_str)
    }
    fn write_line(&self, body: &mut Vec<u8>, scratch: &mut String) -> bool {
        scratch.clear();
        self.write_json(scratch);
        body.extend_from_slice(scratch.as_bytes());
        body.push(b'\n');
        true
    }
}

impl Record for ClickEvent {
    const FEED: Feed = Feed::Clickstream;
    fn nanos(&self) -> u64 {
        self.timestamp_nanos
    }
    fn tags(&self) -> &[String] {
        &self.tags
    }
    fn trace_id(&self) -> Option<&str> {
        Some(self.trace_id.as_str())
    }
    fn discriminator(&self) -> &str {
        &self.doc_id
    }
    /// Through serde: a click is written per fetched document that carries a trace context.
    fn write_line(&self, body: &mut Vec<u8>, _: &mut String) -> bool {
        let len = body.len();
        if serde_json::to_writer(&mut *body, self).is_err() {
            body.truncate(len);
            return false;
        }
        body.push(b'\n');
        true
    }
}

/// Wall-clock nanoseconds since the epoch (0 before 1970, saturating in 2554).
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn datetime(nanos: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
}

/// `2026-05-22T08:00:00.000Z`: the documented `timestamp` spelling (RFC 3339, milliseconds, UTC),
/// its digits written in place and held inline (24 bytes; chrono's formatter allocates, and
/// `write!` with padded arguments costs several times these few divisions).
pub fn rfc3339(nanos: u64) -> CompactString {
    let t = datetime(nanos);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    // Years 1970 to 2262 (`datetime` caps at `i64::MAX` nanoseconds): always four digits.
    digits(&mut text[0..4], t.year().unsigned_abs());
    digits(&mut text[5..7], t.month());
    digits(&mut text[8..10], t.day());
    digits(&mut text[11..13], t.hour());
    digits(&mut text[14..16], t.minute());
    digits(&mut text[17..19], t.second());
    digits(&mut text[20..23], t.timestamp_subsec_millis());
    CompactString::from(std::str::from_utf8(&text).unwrap_or_default())
}

/// Writes the low `out.len()` decimal digits of `n`, zero-padded.
fn digits(out: &mut [u8], mut n: u32) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The `YYYY-MM-DD` (UTC) directory of a timestamp.
pub fn date_dir(nanos: u64) -> String {
    datetime(nanos).format("%Y-%m-%d").to_string()
}

/// The first nanosecond after the UTC day a [`date_dir`] names (`None` when it names none): every
/// record filed under that directory is older.
pub fn date_dir_end(dir: &str) -> Option<u64> {
    let day = chrono::NaiveDate::parse_from_str(dir, "%Y-%m-%d").ok()?;
    let next = day.succ_opt()?.and_hms_opt(0, 0, 0)?.and_utc();
    u64::try_from(next.timestamp_nanos_opt()?).ok()
}

/// Parses an RFC 3339 time into epoch nanoseconds (times before 1970 clamp to 0).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = DateTime::parse_from_rfc3339(s.trim()).ok()?;
    let n = t.timestamp_nanos_opt()?;
    Some(u64::try_from(n).unwrap_or(0))
}

/// A record's trace id: the 32 lowercase hex digits a `traceparent` carries, held inline; any
/// other text (a record another writer stored) on the heap. Compares and serializes as its text.
#[derive(Clone)]
pub struct TraceId(TraceText);

#[derive(Clone)]
enum TraceText {
    /// Lowercase hex digits: only [`trace_id_of`] and `From<&str>` make one, after checking.
    Hex([u8; 32]),
    Other(Box<str>),
}

impl TraceId {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            TraceText::Hex(b) => std::str::from_utf8(b).unwrap_or_default(),
            TraceText::Other(s) => s,
        }
    }
}

/// `s` as 32 lowercase hex digits, when it is that.
fn lower_hex(s: &str) -> Option<[u8; 32]> {
    let b = <[u8; 32]>::try_from(s.as_bytes()).ok()?;
    b.iter()
        .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        .then_some(b)
}

impl From<&str> for TraceId {
    fn from(s: &str) -> Self {
        TraceId(lower_hex(s).map_or_else(|| TraceText::Other(s.into()), TraceText::Hex))
    }
}

impl PartialEq for TraceId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Debug for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for TraceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TraceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(TraceId(lower_hex(&s).map_or_else(
            || TraceText::Other(s.into_boxed_str()),
            TraceText::Hex,
        )))
    }
}

/// The 32-hex trace-id part of a W3C `traceparent` (`00-<trace-id>-<parent-id>-<flags>`),
/// lowercased. `None` when the header is not a traceparent or the id is all zeros (invalid per
/// the W3C spec).
pub fn trace_id_of(traceparent: &[u8]) -> Option<TraceId> {
    let s = std::str::from_utf8(traceparent).ok()?.trim().as_bytes();
    // `vv-<32 hex>-<16 hex>-...`: the version and the parent id are checked by length.
    let (version, rest) = s.split_at_checked(2)?;
    let rest = rest.strip_prefix(b"-")?;
    let (trace, rest) = rest.split_at_checked(32)?;
    let rest = rest.strip_prefix(b"-")?;
    let parent_len = rest.iter().position(|&b| b == b'-').unwrap_or(rest.len());
    if version.contains(&b'-') || parent_len != 16 {
        return None;
    }
    // One pass without branches (it vectorises): lowercase, check every digit, and see one
    // that is not zero.
    let mut hex = [0u8; 32];
    let (mut bad, mut nonzero) = (false, false);
    for (out, &b) in hex.iter_mut().zip(trace) {
        let b = b.to_ascii_lowercase();
        bad |= !(b.wrapping_sub(b'0') < 10 || b.wrapping_sub(b'a') < 6);
        nonzero |= b != b'0';
        *out = b;
    }
    (nonzero && !bad).then_some(TraceId(TraceText::Hex(hex)))
}

/// The object key of a batch whose newest entry is `max_nanos`.
pub fn object_key(feed: Feed, ns: &str, max_nanos: u64) -> String {
    format!(
        "{}/{ns}/{}/{max_nanos}.jsonl",
        feed.prefix(),
        date_dir(max_nanos)
    )
}

/// The newest-entry timestamp an object key names (`None` for keys this module did not write).
pub fn key_nanos(key: &str) -> Option<u64> {
    let name = key.rsplit('/').next()?;
    let digits = name.strip_suffix(".jsonl")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether a directory name is a `YYYY-MM-DD` date (anything else under a feed is ignored).
pub fn is_date_dir(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_documented() {
        let n = 1_747_900_800_123_456_789;
        assert_eq!(rfc3339(n), "2025-05-22T08:00:00.123Z");
        // The inline writer spells every time as chrono's RFC 3339 formatter does, from the
        // epoch to the last representable nanosecond.
        let mut t = 0u64;
        while t < u64::MAX / 2 {
            let chrono = datetime(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert_eq!(rfc3339(t), chrono, "{t}");
            t = t * 3 + 7_919_000_017;
        }
        let last = datetime(u64::MAX).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        assert_eq!(rfc3339(u64::MAX), last);
        assert_eq!(date_dir(n), "2025-05-22");
        assert_eq!(
            parse_rfc3339("2025-05-22T08:00:00.123456789Z"),
            Some(1_747_900_800_123_456_789)
        );
        assert_eq!(
            parse_rfc3339("2025-05-22T10:00:00+02:00"),
            Some(1_747_900_800_000_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("1969-12-31T00:00:00Z"), Some(0));
    }

    #[test]
    fn trace_ids_read_back_as_their_text() {
        let hex = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert!(matches!(TraceId::from(hex).0, TraceText::Hex(_)));
        for other in ["t1", "4BF92F3577B34DA6A3CE929D0E0E4736", "", "ü"] {
            assert!(
                matches!(TraceId::from(other).0, TraceText::Other(_)),
                "{other}"
            );
        }
        for text in [hex, "t1", "4BF92F3577B34DA6A3CE929D0E0E4736", ""] {
            let id = TraceId::from(text);
            assert_eq!(id.as_str(), text);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            let back: TraceId = serde_json::from_str(&json).unwrap();
            assert_eq!(back, id);
            assert_eq!(back.as_str(), text);
        }
        // The parsed form and the text form of one id are equal.
        let parsed = trace_id_of(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(parsed, Some(TraceId(TraceText::Other(hex.into()))));
    }

    #[test]
    fn trace_ids_come_from_the_traceparent() {
        assert_eq!(
            trace_id_of(b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")
                .as_ref()
                .map(TraceId::as_str),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id_of(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of(b"4bf92f3577b34da6a3ce929d0e0e4736"), None);
        assert_eq!(
            trace_id_of(b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of(b"\xff"), None);
        let id = |t: &[u8]| trace_id_of(t).map(|t| t.as_str().to_owned());
        let hex = Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned());
        assert_eq!(
            id(b" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 "),
            hex
        );
        assert_eq!(
            id(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"),
            hex
        );
        assert_eq!(
            id(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"),
            hex
        );
        for bad in [
            &b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-",
            b"0-4bf92f3577b34da6a3ce929d0e0e47360-00f067aa0ba902b7-01",
            b"000-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e47g6-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-\xff",
        ] {
            assert_eq!(id(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn object_keys_round_trip() {
        let n = 1_747_900_800_123_456_789;
        let key = object_key(Feed::SearchHistory, "products", n);
        assert_eq!(
            key,
            "search-history/products/2025-05-22/1747900800123456789.jsonl"
        );
        assert_eq!(key_nanos(&key), Some(n));
        // 2025-05-23T00:00:00Z: past every record filed under 2025-05-22.
        assert_eq!(date_dir_end("2025-05-22"), Some(1_747_958_400_000_000_000));
        assert_eq!(date_dir(1_747_958_400_000_000_000 - 1), "2025-05-22");
        assert_eq!(date_dir_end("misc"), None);
        assert_eq!(
            key_nanos("search-history/products/2025-05-22/x.jsonl"),
            None
        );
        assert_eq!(key_nanos("search-history/products/2025-05-22/.jsonl"), None);
        assert_eq!(
            key_nanos("search-history/products/2025-05-22/12.json"),
            None
        );
        assert!(is_date_dir("2025-05-22"));
        assert!(!is_date_dir("2025-5-22"));
        assert!(!is_date_dir("2025_05_22"));
    }

    fn entry(
        trace_id: Option<&str>,
        raw_query: Option<&str>,
        stable_as_of: Option<u64>,
    ) -> SearchEntry {
        SearchEntry {
            timestamp: rfc3339(1_747_900_800_000_000_001),
            timestamp_nanos: 1_747_900_800_000_000_001,
            namespace: "ns".into(),
            trace_id: trace_id.map(TraceId::from),
            raw_query: raw_query.map(str::to_string),
            stable_as_of,
            query: QuerySummary::built(r#"{"top_k":10,"rank_by":["v","ANN",{"dims":3}]}"#),
            top_result_ids: ResultIds::built(r#"["a","b\"c"]"#),
            tags: vec![],
        }
    }

    /// The stored line, written by hand, read back through serde.
    fn written(e: &SearchEntry) -> SearchEntry {
        let mut line = String::new();
        e.write_json(&mut line);
        assert!(!line.contains('\n'), "one line: {line}");
        serde_json::from_str(&line).unwrap_or_else(|err| panic!("{err}: {line}"))
    }

    #[test]
    fn optional_fields_are_omitted_and_big_nanos_survive() {
        let e = entry(None, None, None);
        let text = serde_json::to_string(&e).unwrap();
        let mut line = String::new();
        e.write_json(&mut line);
        for t in [&text, &line] {
            assert!(!t.contains("trace_id") && !t.contains("raw_query"));
            assert!(!t.contains("stable_as_of"));
            assert!(t.contains("\"timestamp_nanos\":1747900800000000001"));
        }
        let back: SearchEntry = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
        assert_eq!(written(&e), e);
    }

    #[test]
    fn a_written_line_is_what_serde_writes() {
        let mut e = entry(
            Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            Some("q=\"shoes\"\n\u{7}\\ caf\u{e9}"),
            Some(u64::MAX),
        );
        e.namespace = "n\u{1}s".into();
        e.tags = vec!["a".into(), "t\tab".into(), String::new()];
        let mut line = String::new();
        e.write_json(&mut line);
        assert_eq!(line, serde_json::to_string(&e).unwrap());
        assert_eq!(written(&e), e);
        // An entry read back from a line another writer stored (any trace id text) as well.
        assert_eq!(
            written(&entry(Some("not hex"), None, Some(0))).trace_id,
            Some(TraceId::from("not hex"))
        );
    }

    #[test]
    fn line_breaks_between_tokens_become_spaces() {
        let text = "{\"filters\":[\"t\",\n \"Eq\",\r\n\"a\\nb\"]}";
        let q = QuerySummary::built(text);
        assert_eq!(q.get(), "{\"filters\":[\"t\",  \"Eq\",  \"a\\nb\"]}");
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(text).unwrap(),
            serde_json::from_str(q.get()).unwrap(),
        );
        assert_eq!(a, b);
        let mut e = entry(None, None, None);
        e.query = q;
        assert_eq!(written(&e), e);
    }

    #[test]
    fn serializing_an_entry_through_serde_keeps_the_summary_as_json() {
        let e = entry(None, None, None);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["query"]["rank_by"][2]["dims"], 3);
        assert_eq!(v["top_result_ids"], serde_json::json!(["a", "b\"c"]));
    }

    proptest::proptest! {
        /// Any strings in the entry's text fields: the hand-written line reads back as the entry,
        /// and is the very text serde writes.
        #[test]
        fn written_lines_read_back_as_the_entry(
            ns in ".{0,12}",
            trace in proptest::option::of(".{0,40}"),
            raw_query in proptest::option::of(".{0,40}"),
            stable_as_of in proptest::option::of(proptest::num::u64::ANY),
            nanos in proptest::num::u64::ANY,
            tags in proptest::collection::vec(".{0,10}", 0..4),
            texts in proptest::sample::select(vec![
                ("{}", "[]"),
                (r#"{"top_k":10,"rank_by":["v","ANN",{"dims":3}]}"#, r#"["a","b\"c"]"#),
                ("{\"filters\":[\"t\",\n \"Eq\",\r\n\"a\\nb\"]}", r#"["\u00e9\t"]"#),
            ]),
        ) {
            let mut e = entry(trace.as_deref(), raw_query.as_deref(), stable_as_of);
            e.query = QuerySummary::built(texts.0);
            e.top_result_ids = ResultIds::built(texts.1);
            e.namespace = ns.as_str().into();
            e.timestamp_nanos = nanos;
            e.timestamp = rfc3339(nanos);
            e.tags = tags;
            let mut line = String::new();
            e.write_json(&mut line);
            proptest::prop_assert_eq!(&line, &serde_json::to_string(&e).unwrap());
            proptest::prop_assert_eq!(written(&e), e);
        }
    }
}
