//! The requests `docket serve` accepts, read without I/O: OPA's decision-log uploads, the Data
//! API's bodies and paths, and C2SP tlog tile addresses (`docs/api.md`).
//!
//! Architecture invariant: this crate does no I/O. Everything a client sends is decoded and
//! checked here before the server acts on it, which is also what makes these paths fuzzable
//! without a server (`tests/fuzz`, target `http_requests`).

use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;
use std::io::Read;

pub mod events;
pub use events::{DroppedDecision, IngestEvent, parse_events};

/// Why a request was refused; the message says what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// 400: the request is malformed.
    BadRequest(String),
    /// 413: the request (or what it decompresses to) is larger than the server accepts.
    TooLarge(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::BadRequest(m) | WireError::TooLarge(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for WireError {}

/// Decompresses a gzip body, refusing more than `limit` bytes of output (a gzip bomb) and any
/// truncated or corrupt stream.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "it is truncated".to_string()
        } else {
            e.to_string()
        };
        WireError::BadRequest(format!(
            "the body is not a valid gzip stream ({why}); nothing was logged"
        ))
    })?;
    if out.len() > limit {
        return Err(WireError::TooLarge(format!(
            "the upload decompresses to more than {limit} bytes; nothing was logged"
        )));
    }
    Ok(out)
}

/// Compresses a response body with gzip.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

/// True if an `Accept-Encoding` value accepts gzip (RFC 9110 §12.5.3: a `q=0` refuses it).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// The `input` of a Data API body (`{"input": …}`), as JSON text; `None` for an empty body or
/// one without `input`.
pub fn data_request_input(body: &[u8]) -> Result<Option<String>, WireError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    checked_body(body)?;
    #[derive(Deserialize)]
    struct DataRequest<'a> {
        #[serde(borrow)]
        input: Option<&'a RawValue>,
    }
    let request: DataRequest = serde_json::from_slice(body).map_err(|e| {
        WireError::BadRequest(format!(
            "body contains malformed input document: {e}; send {{\"input\": <JSON>}}"
        ))
    })?;
    Ok(request.input.map(|raw| raw.get().to_string()))
}

/// Holds a request body to docket's JSON rule (`docket_ledger::json`): one reading of the bytes
/// for everything that decides on, masks and seals them.
fn checked_body(body: &[u8]) -> Result<(), WireError> {
    docket_ledger::json::check_bytes(body)
        .map_err(|e| WireError::BadRequest(format!("body contains malformed input document: {e}")))
}

/// The body of a Data API answer, OPA's `{"decision_id": …, "result": …}`: `decision_id` is
/// left out when the decision has no entry (its logging rules dropped it), `result` when the
/// document is undefined. `result` is the decision's JSON text, passed through unchanged.
pub fn data_response(decision_id: Option<&str>, result: Option<&str>) -> String {
    let id = decision_id.map(|id| {
        let id = serde_json::to_string(id).expect("strings serialize");
        format!(r#""decision_id":{id}"#)
    });
    match (id, result) {
        (Some(id), Some(result)) => format!(r#"{{{id},"result":{result}}}"#),
        (Some(id), None) => format!("{{{id}}}"),
        (None, Some(result)) => format!(r#"{{"result":{result}}}"#),
        (None, None) => "{}".to_string(),
    }
}

/// A Data API answer (`data_response`) with OPA's `metrics` member: `(name, value)` pairs,
/// as `?metrics=true` asks for them.
pub fn data_response_with_metrics(
    decision_id: Option<&str>,
    result: Option<&str>,
    metrics: &[(&str, u64)],
) -> String {
    let body = data_response(decision_id, result);
    let members: Vec<String> = metrics
        .iter()
        .map(|(name, value)| {
            let name = serde_json::to_string(name).expect("strings serialize");
            format!("{name}:{value}")
        })
        .collect();
    let metrics = format!(r#""metrics":{{{}}}"#, members.join(","));
    match body.strip_suffix('}') {
        Some(open) if open.len() > 1 => format!("{open},{metrics}}}"),
        _ => format!("{{{metrics}}}"),
    }
}

/// JSON `text` indented, when serde_json holds every number in it exactly (it would round an
/// integer beyond 64 bits); else `text` as it is.
pub fn pretty_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .filter(|v| serde_json::to_string(v).is_ok_and(|t| t == text))
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string())
}

/// The body of an error answer, in OPA's shape: `{"code": …, "message": …}`.
pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"code": code, "message": message}).to_string()
}

/// The body of `POST /` (OPA's default decision): the input document itself.
pub fn default_decision_input(body: &[u8]) -> Result<Option<String>, WireError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    checked_body(body)?;
    let raw: &RawValue = serde_json::from_slice(body).map_err(|e| {
        WireError::BadRequest(format!("body contains malformed input document: {e}"))
    })?;
    Ok(Some(raw.get().to_string()))
}

/// A Data API path's segments (`a//b/` → `["a", "b"]`).
pub fn data_path(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Entries per tile and per entry bundle (C2SP tlog-tiles).
pub const TILE_WIDTH: u64 = 256;

/// A tile address: `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, with N written in groups of
/// three digits, all but the last prefixed by `x` (C2SP tlog-tiles).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct TileAddress {
    /// `None` for an entry bundle.
    pub level: Option<u8>,
    pub index: u64,
    /// `None` for a full tile.
    pub width: Option<u64>,
}

impl TileAddress {
    /// The position of the tile's first hash among the hashes of its level (for an entry
    /// bundle: its first entry's seq), `index · 256`. [`parse_tile`] only returns addresses
    /// whose every leaf has a u64 index, so this never overflows.
    pub fn first(&self) -> u64 {
        self.index * TILE_WIDTH
    }

    /// The address's one spelling after `tile/` (C2SP tlog-tiles): the level or `entries`, the
    /// index in groups of three digits (`x001/x234/067`), and `.p/<width>` for a partial tile.
    /// [`parse_tile`] reads exactly these spellings back.
    pub fn path(&self) -> String {
        let mut groups = vec![format!("{:03}", self.index % 1000)];
        let mut rest = self.index / 1000;
        while rest > 0 {
            groups.push(format!("x{:03}", rest % 1000));
            rest /= 1000;
        }
        groups.reverse();
        let level = self.level.map_or("entries".to_string(), |l| l.to_string());
        let width = self.width.map_or(String::new(), |w| format!(".p/{w}"));
        format!("{level}/{}{width}", groups.join("/"))
    }
}

/// The last leaf a tile covers, if it is a u64: a level-L hash stands for 256^L leaves.
fn last_leaf(level: Option<u8>, index: u64, width: u64) -> Option<u64> {
    let per_hash = 256u128.checked_pow(u32::from(level.unwrap_or(0)))?;
    let hashes = u128::from(index) * u128::from(TILE_WIDTH) + u128::from(width);
    u64::try_from(hashes.checked_mul(per_hash)? - 1).ok()
}

/// Parses the part of a tile URL after `tile/`; `None` if it is not a tile address.
pub fn parse_tile(rest: &str) -> Option<TileAddress> {
    let mut parts: Vec<&str> = rest.split('/').collect();
    let level = match parts.first()? {
        &"entries" => None,
        // Decimal without leading zeros (`00` is not level 0), as Go's tlog writes it.
        l if !l.is_empty()
            && l.len() <= 2
            && l.bytes().all(|b| b.is_ascii_digit())
            && (l.len() == 1 || !l.starts_with('0')) =>
        {
            Some(l.parse::<u8>().ok().filter(|l| *l <= 63)?)
        }
        _ => return None,
    };
    parts.remove(0);
    let mut width = None;
    if parts.len() >= 2 && parts[parts.len() - 2].ends_with(".p") {
        let w = parts.pop()?;
        if w.is_empty()
            || w.len() > 3
            || w.starts_with('0')
            || !w.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let w: u64 = w.parse().ok()?;
        if !(1..TILE_WIDTH).contains(&w) {
            return None;
        }
        width = Some(w);
        let last = parts.last_mut()?;
        *last = last.strip_suffix(".p")?;
    }
    let (last, groups) = parts.split_last()?;
    // One spelling per tile: no leading all-zero group (`x000/x001/002` is `x001/002`), or the
    // same tile would be served, and cached, under two paths. Found by the fuzzer.
    if groups.first().is_some_and(|g| *g == "x000") {
        return None;
    }
    let mut index: u64 = 0;
    for group in groups {
        let digits = group.strip_prefix('x')?;
        index = index
            .checked_mul(1000)?
            .checked_add(three_digits(digits)?)?;
    }
    index = index.checked_mul(1000)?.checked_add(three_digits(last)?)?;
    // Every leaf the tile covers has a u64 index, or no log can have the tile: an address
    // whose leaves wrapped past 2^64 would name another tile's bytes.
    last_leaf(level, index, width.unwrap_or(TILE_WIDTH))?;
    Some(TileAddress {
        level,
        index,
        width,
    })
}

fn three_digits(s: &str) -> Option<u64> {
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_is_bounded_and_truncation_is_named() {
        let body = gz(&[b' '; 10_000]);
        assert_eq!(gunzip(&body, 10_000).unwrap().len(), 10_000);
        let err = gunzip(&body, 9_999).unwrap_err();
        assert!(matches!(err, WireError::TooLarge(_)), "{err}");
        let err = gunzip(&body[..body.len() - 6], 10_000).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(gunzip(b"not gzip", 100).is_err());
    }

    #[test]
    fn events_must_be_objects_with_string_ids() {
        let ok = parse_events(br#"[{"decision_id":"a","result": true}, {"x":1}]"#).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].json, r#"{"decision_id":"a","result":true}"#);
        assert_eq!(ok[0].decision_id.as_deref(), Some("a"));
        assert_eq!(ok[1].decision_id, None);
        for bad in [
            &b"{}"[..],
            b"[1]",
            b"[{\"decision_id\":5}]",
            b"[{}",
            b"[[]]",
        ] {
            assert!(
                parse_events(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn data_api_bodies() {
        assert_eq!(data_request_input(b"  ").unwrap(), None);
        assert_eq!(data_request_input(b"{}").unwrap(), None);
        assert_eq!(
            data_request_input(br#"{"input": {"a": 1}}"#).unwrap(),
            Some(r#"{"a": 1}"#.to_string())
        );
        assert!(data_request_input(b"{\"input\":").is_err());
        assert_eq!(
            default_decision_input(b" [1] ").unwrap(),
            Some("[1]".to_string())
        );
        assert!(default_decision_input(b"nope").is_err());
        assert_eq!(data_path("/a//b/"), vec!["a", "b"]);
    }

    #[test]
    fn data_api_answers() {
        let answer = |id, result| -> serde_json::Value {
            serde_json::from_str(&data_response(id, result)).unwrap()
        };
        assert_eq!(
            answer(Some("d\"1"), Some("[1, 2.50]")),
            serde_json::json!({"decision_id": "d\"1", "result": [1, 2.5]})
        );
        assert_eq!(
            answer(Some("d"), None),
            serde_json::json!({"decision_id": "d"})
        );
        assert_eq!(
            answer(None, Some("true")),
            serde_json::json!({"result": true})
        );
        assert_eq!(answer(None, None), serde_json::json!({}));
        // The result's text is passed through: big integers keep every digit.
        assert!(
            data_response(None, Some("12345678901234567890123"))
                .contains("12345678901234567890123")
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&error_body("internal_error", "a \"b\""))
                .unwrap(),
            serde_json::json!({"code": "internal_error", "message": "a \"b\""})
        );
    }

    #[test]
    fn tile_paths() {
        let t = |level, index, width| TileAddress {
            level,
            index,
            width,
        };
        assert_eq!(parse_tile("0/000"), Some(t(Some(0), 0, None)));
        assert_eq!(
            parse_tile("1/x001/x234/067"),
            Some(t(Some(1), 1_234_067, None))
        );
        assert_eq!(parse_tile("0/005.p/17"), Some(t(Some(0), 5, Some(17))));
        // The last tiles whose leaves all have u64 indexes.
        let last = 72_057_594_037_927_935;
        assert_eq!(
            parse_tile("0/x072/x057/x594/x037/x927/935"),
            Some(t(Some(0), last, None))
        );
        assert_eq!(
            parse_tile("entries/x072/x057/x594/x037/x927/935"),
            Some(t(None, last, None))
        );
        assert_eq!(
            parse_tile("1/x281/x474/x976/x710/655"),
            Some(t(Some(1), 281_474_976_710_655, None))
        );
        assert_eq!(parse_tile("8/000.p/1"), Some(t(Some(8), 0, Some(1))));
        assert_eq!(
            parse_tile("entries/x001/002.p/255"),
            Some(t(None, 1002, Some(255)))
        );
        // Every address written is the one read back, and back again.
        for good in [
            "0/000",
            "1/x001/x234/067",
            "0/005.p/17",
            "0/x072/x057/x594/x037/x927/935",
            "entries/x001/002.p/255",
            "entries/x001/000",
            "8/000.p/1",
        ] {
            let address = parse_tile(good).unwrap();
            assert_eq!(address.path(), good);
        }
        for bad in [
            "0/5",
            "0/0005",
            "0/x000",
            "0/000.p/0",
            "0/000.p/256",
            "64/000",
            "a/000",
            "0/001/002",
            "entries",
            "0/000.p/",
            "0/000.p/017",
            "0/000.p/17x",
            "1/x000/x234/067.p/17",
            "entries/x000/001",
            // Leading zeros in the level: one path per tile.
            "00/000",
            "01/000",
            // Leaves past 2^64: index · 256 wraps (found by a hostile client, issue 21).
            "0/x072/x057/x594/x037/x927/936.p/5",
            "entries/x072/x057/x594/x037/x927/936",
            "1/x281/x474/x976/x710/656",
            "8/000.p/2",
        ] {
            assert_eq!(parse_tile(bad), None, "{bad}");
        }
    }

    #[test]
    fn metrics_join_the_data_answer_as_a_member() {
        let m = [
            ("timer_server_handler_ns", 7_u64),
            ("timer_rego_query_eval_ns", 3),
        ];
        for (id, result) in [
            (Some("d1"), Some("true")),
            (None, Some("[1]")),
            (Some("d1"), None),
            (None, None),
        ] {
            let body = data_response_with_metrics(id, result, &m);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["metrics"]["timer_server_handler_ns"], 7, "{body}");
            assert_eq!(v["metrics"]["timer_rego_query_eval_ns"], 3, "{body}");
            assert_eq!(v.get("decision_id").and_then(|d| d.as_str()), id, "{body}");
            assert_eq!(
                v.get("result").map(|r| r.to_string()).as_deref(),
                result,
                "{body}"
            );
        }
    }
}
