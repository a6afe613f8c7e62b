//! docket in Envoy: a proxy-wasm HTTP filter (ABI 0.2.1, built for wasm32-wasip1) that decides
//! every request with `docket-policy` and lets it go on only once `docket serve` has sealed the
//! decision durably. See `docs/envoy.md`.
//!
//! Why the filter hands its decisions to `docket serve` instead of sealing in its VM: Envoy runs
//! one VM per worker thread and may restart them at will, so sealing inside would make one chain
//! per worker, put the signing key into every VM's memory, and leave durability to a sandbox with
//! no files. One `docket serve` keeps one chain, one key and fsync'd commits for the whole fleet;
//! the filter waits for its acknowledgement (an HTTP callout), so a decision the log does not hold
//! is never acted on.
//!
//! This module holds the filter's logic as plain functions (tested natively); `filter.rs` is the
//! proxy-wasm glue.

pub mod filter;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The plugin configuration (Envoy's `configuration` of the Wasm filter), JSON.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Rego modules by id.
    pub policies: BTreeMap<String, String>,
    /// The data document.
    #[serde(default)]
    pub data: Option<Value>,
    /// The data path deciding a request, e.g. `envoy/authz/allow`. Its result is `true`/`false`,
    /// or an object with `allowed` (and optionally `http_status`, `body`, `headers`).
    pub query: String,
    /// Where decisions are sealed.
    pub docket: DocketConfig,
    #[serde(default)]
    pub deny: DenyConfig,
    /// Let requests through when their decision cannot be recorded (counted and logged).
    /// Default false: fail closed.
    #[serde(default)]
    pub fail_open: bool,
    /// Labels recorded with every decision (OPA's `labels`), e.g. `{"id": "edge-1"}`.
    #[serde(default)]
    pub labels: Map<String, Value>,
    /// Request headers left out of `input` (lower case); `authorization` is always left out
    /// (its JWT claims go into `input.jwt` instead).
    #[serde(default)]
    pub redact_headers: Vec<String>,
    /// Answer OPA's Data API in the proxy (`POST <prefix>/<path>` with `{"input": …}`), sealed
    /// like every other decision; off unless configured. See docs/envoy.md, "The Data API".
    #[serde(default)]
    pub data_api: Option<DataApiConfig>,
    /// The `payload_in_metadata` name of Envoy's `jwt_authn` filter in front of this one. When
    /// set, `input.jwt` holds the claims jwt_authn verified (`"verified": true`), and the
    /// `Authorization` header is never decoded here; unset, a bearer token's claims are decoded
    /// unverified (`"verified": false`). docs/envoy.md, "Input".
    #[serde(default)]
    pub jwt_authn_payload: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct DataApiConfig {
    /// The path prefix answered, e.g. `/v1/data` (OPA's own).
    #[serde(default = "default_data_api_prefix")]
    pub prefix: String,
    /// The largest request body read; a larger one is refused with 413.
    #[serde(default = "default_data_api_max_body")]
    pub max_body_bytes: usize,
    /// The documents the Data API answers (slash-separated, `envoy/authz` answers
    /// `/v1/data/envoy/authz` and everything under it; `""` answers every document, data
    /// included). Required: a request for any other document is not answered by the filter
    /// but decided by `query` like any other request.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
}

fn default_data_api_prefix() -> String {
    "/v1/data".into()
}
fn default_data_api_max_body() -> usize {
    1 << 20
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct DocketConfig {
    /// The Envoy cluster `docket serve` is reached through.
    pub cluster: String,
    /// The `:authority` of the callout.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// docket's ingestion path.
    #[serde(default = "default_path")]
    pub path: String,
    /// docket's write token.
    pub token: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_authority() -> String {
    "docket".into()
}
fn default_path() -> String {
    "/logs".into()
}
fn default_timeout_ms() -> u64 {
    2000
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct DenyConfig {
    #[serde(default = "default_deny_status")]
    pub status: u32,
    #[serde(default = "default_deny_body")]
    pub body: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_deny_status() -> u32 {
    403
}
fn default_deny_body() -> String {
    "request denied by policy\n".into()
}

impl Default for DenyConfig {
    fn default() -> DenyConfig {
        DenyConfig {
            status: default_deny_status(),
            body: default_deny_body(),
            headers: BTreeMap::new(),
        }
    }
}

impl DataApiConfig {
    /// The data path a request's `:path` asks for (`/v1/data/a/b?x` → `a/b`), if it is under the
    /// prefix; segments are percent-decoded as OPA does.
    pub fn data_path(&self, request_path: &str) -> Option<String> {
        let path = request_path.split('?').next().unwrap_or_default();
        let prefix = self.prefix.trim_end_matches('/');
        let rest = path.strip_prefix(prefix)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let segments: Vec<String> = docket_wire::data_path(rest)
            .iter()
            .map(|s| percent_decode(s))
            .collect();
        let path = segments.join("/");
        let allowed = self.paths.iter().flatten().any(|allowed| {
            let allowed = allowed.trim_matches('/');
            allowed.is_empty()
                || path == allowed
                || path
                    .strip_prefix(allowed)
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        allowed.then_some(path)
    }
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config, String> {
        let config: Config = serde_json::from_slice(bytes)
            .map_err(|e| format!("the docket filter configuration is not valid: {e}"))?;
        if config.policies.is_empty() {
            return Err("the docket filter configuration names no policies".into());
        }
        if config.docket.token.len() < 16 {
            return Err("docket.token must be docket serve's write token".into());
        }
        if let Some(api) = &config.data_api
            && api.paths.is_none()
        {
            return Err(
                "data_api.paths must list the documents the Data API may answer, e.g. \
                        [\"envoy/authz\"] ([\"\"] answers every document, all data included)"
                    .into(),
            );
        }
        if let Some(api) = &config.data_api
            && !api.prefix.starts_with('/')
        {
            return Err(format!(
                "data_api.prefix {:?} must be a path starting with '/', e.g. \"/v1/data\"",
                api.prefix
            ));
        }
        Ok(config)
    }

    /// An engine loaded with the configured policies and data.
    pub fn engine(&self) -> Result<docket_policy::PolicyEngine, String> {
        let mut engine = docket_policy::PolicyEngine::new();
        for (id, source) in &self.policies {
            engine
                .add_policy(id, source)
                .map_err(|e| format!("policy {id}: {e}"))?;
        }
        if let Some(data) = &self.data {
            engine
                .add_data(&data.to_string())
                .map_err(|e| format!("data: {e}"))?;
        }
        Ok(engine)
    }
}

/// What the filter knows about a request.
pub struct Request<'a> {
    pub headers: &'a [(String, String)],
    pub source_address: Option<String>,
    pub destination_address: Option<String>,
    pub claims: Claims,
}

/// Where `input.jwt` comes from.
pub enum Claims {
    /// The bearer token in `Authorization`, decoded here and not verified.
    Unverified,
    /// The payload Envoy's `jwt_authn` verified (`None`: it verified no token).
    Verified(Option<Value>),
}

/// Whether a request header is one docket itself sets (`x-docket-decision-id`, …): a client
/// sending one is never believed, so the filter removes it before deciding or forwarding.
pub fn is_docket_header(name: &str) -> bool {
    name.as_bytes()
        .get(..9)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"x-docket-"))
}

/// The request headers as the policy input holds them: docket's own headers left out (see
/// [`is_docket_header`]), and each value UTF-8. A value that is not UTF-8 is decoded with U+FFFD
/// for each bad byte and its header's name is returned: such a request is not decided on
/// (docs/envoy.md, "Input").
pub fn decode_headers(raw: Vec<(String, Vec<u8>)>) -> (Vec<(String, String)>, Vec<String>) {
    let mut not_utf8 = Vec::new();
    let headers = raw
        .into_iter()
        .filter(|(name, _)| !is_docket_header(name))
        .map(|(name, value)| match String::from_utf8(value) {
            Ok(value) => (name, value),
            Err(e) => {
                not_utf8.push(name.clone());
                (name, String::from_utf8_lossy(e.as_bytes()).into_owned())
            }
        })
        .collect();
    (headers, not_utf8)
}

/// Headers that carry credentials: never put into the input, so never sealed in the log, whatever
/// `redact_headers` says (`authorization`'s bearer JWT is decoded into `input.jwt` instead).
pub const CREDENTIAL_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "x-auth-token",
];

/// The policy input, in the shape of OPA's Envoy plugin (`input.attributes.request.http`,
/// `input.parsed_path`, `input.parsed_query`), plus `input.jwt` (header and claims of a bearer
/// JWT, *not* signature-checked: verify tokens with Envoy's `jwt_authn` filter first).
pub fn build_input(request: &Request, redact: &[String]) -> Value {
    let mut headers = Map::new();
    let mut method = String::new();
    let mut path = String::new();
    let mut host = String::new();
    let mut scheme = String::new();
    let mut bearer = None;
    for (name, value) in request.headers {
        match name.as_str() {
            ":method" => method = value.clone(),
            ":path" => path = value.clone(),
            ":authority" => host = value.clone(),
            ":scheme" => scheme = value.clone(),
            // Exactly the prefix Envoy's jwt_authn takes a token from by default: a token under
            // any other spelling (`bearer …`) is one jwt_authn never checked, so its claims are
            // not decoded either.
            "authorization" if matches!(request.claims, Claims::Unverified) => {
                bearer = value.strip_prefix("Bearer ").map(str::to_string)
            }
            n if n.starts_with(':')
                || CREDENTIAL_HEADERS.contains(&n)
                || redact.iter().any(|r| r == n) => {}
            n => {
                // Repeated headers join with a comma, as HTTP allows.
                let joined = match headers.get(n).and_then(Value::as_str) {
                    Some(prior) => format!("{prior},{value}"),
                    None => value.clone(),
                };
                headers.insert(n.to_string(), Value::String(joined));
            }
        }
    }
    let (path_only, query) = path.split_once('?').unwrap_or((path.as_str(), ""));
    let parsed_path: Vec<Value> = path_only
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| Value::String(percent_decode(s)))
        .collect();
    let parsed_query: Map<String, Value> = parse_query(query)
        .into_iter()
        .map(|(k, values)| (k, values.into_iter().map(Value::String).collect()))
        .collect();
    let mut input = json!({
        "attributes": {
            "request": {"http": {
                "method": method,
                "path": path,
                "host": host,
                "scheme": scheme,
                "headers": headers,
            }},
            "source": {"address": request.source_address},
            "destination": {"address": request.destination_address},
        },
        "parsed_path": parsed_path,
        "parsed_query": parsed_query,
    });
    match &request.claims {
        Claims::Unverified => {
            if let Some(jwt) = bearer.as_deref().and_then(decode_jwt) {
                input["jwt"] = jwt;
            }
        }
        Claims::Verified(Some(claims)) => {
            input["jwt"] = json!({"claims": claims, "verified": true});
        }
        Claims::Verified(None) => {}
    }
    input
}

/// A `google.protobuf.Struct` in protobuf's binary encoding (how Envoy hands a filter its
/// dynamic metadata, e.g. `jwt_authn`'s verified payload) as a JSON object. `None` for bytes
/// that are not one, for a name given twice, a number that is not finite, or nesting deeper than
/// docket's JSON rule allows.
pub fn struct_from_protobuf(bytes: &[u8]) -> Option<Map<String, Value>> {
    protobuf::decode_struct(bytes, 0)
}

/// The `filter_metadata` entry `namespace` of an `envoy.config.core.v3.Metadata` in protobuf's
/// binary encoding (what Envoy hands a filter for the `metadata` property), as a JSON object.
pub fn filter_metadata_from_protobuf(bytes: &[u8], namespace: &str) -> Option<Map<String, Value>> {
    protobuf::decode_map_entry(bytes, namespace).and_then(struct_from_protobuf)
}

mod protobuf {
    //! Just enough of protobuf's wire format for `Struct`, `Value` and `ListValue`
    //! (google/protobuf/struct.proto).
    use serde_json::{Map, Number, Value};

    const MAX_DEPTH: usize = 100;

    /// A field: its number and its payload.
    enum Field<'a> {
        Varint(u64),
        Fixed64([u8; 8]),
        Bytes(&'a [u8]),
        Fixed32,
    }

    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn fields(mut bytes: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let tag = varint(&mut bytes)?;
            let field = match tag & 7 {
                0 => Field::Varint(varint(&mut bytes)?),
                1 => {
                    let (head, rest) = bytes.split_at_checked(8)?;
                    bytes = rest;
                    Field::Fixed64(head.try_into().ok()?)
                }
                2 => {
                    let len = usize::try_from(varint(&mut bytes)?).ok()?;
                    let (head, rest) = bytes.split_at_checked(len)?;
                    bytes = rest;
                    Field::Bytes(head)
                }
                5 => {
                    bytes = bytes.get(4..)?;
                    Field::Fixed32
                }
                _ => return None,
            };
            out.push((tag >> 3, field));
        }
        Some(out)
    }

    /// The value bytes of the entry `wanted` of a `map<string, message>` field 1 (a
    /// `Metadata`'s `filter_metadata`); `None` if absent or given twice.
    pub fn decode_map_entry<'a>(bytes: &'a [u8], wanted: &str) -> Option<&'a [u8]> {
        let mut found = None;
        for (number, field) in fields(bytes)? {
            let (1, Field::Bytes(entry)) = (number, field) else {
                continue;
            };
            let (mut key, mut value): (Option<&[u8]>, &[u8]) = (None, &[]);
            for (number, field) in fields(entry)? {
                match (number, field) {
                    (1, Field::Bytes(k)) => key = Some(k),
                    (2, Field::Bytes(v)) => value = v,
                    _ => {}
                }
            }
            if key == Some(wanted.as_bytes()) {
                if found.is_some() {
                    return None;
                }
                found = Some(value);
            }
        }
        found
    }

    pub fn decode_struct(bytes: &[u8], depth: usize) -> Option<Map<String, Value>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut map = Map::new();
        for (number, field) in fields(bytes)? {
            let (1, Field::Bytes(entry)) = (number, field) else {
                continue; // unknown fields are skipped, as protobuf readers do
            };
            let (mut key, mut value) = (None, Value::Null);
            for (number, field) in fields(entry)? {
                match (number, field) {
                    (1, Field::Bytes(k)) => key = Some(std::str::from_utf8(k).ok()?.to_string()),
                    (2, Field::Bytes(v)) => value = decode_value(v, depth + 1)?,
                    _ => {}
                }
            }
            if map.insert(key?, value).is_some() {
                return None;
            }
        }
        Some(map)
    }

    fn decode_value(bytes: &[u8], depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut value = Value::Null;
        for (number, field) in fields(bytes)? {
            value = match (number, field) {
                (1, Field::Varint(_)) => Value::Null,
                (2, Field::Fixed64(b)) => json_number(f64::from_le_bytes(b))?,
                (3, Field::Bytes(s)) => Value::String(std::str::from_utf8(s).ok()?.to_string()),
                (4, Field::Varint(b)) => Value::Bool(b != 0),
                (5, Field::Bytes(s)) => Value::Object(decode_struct(s, depth + 1)?),
                (6, Field::Bytes(list)) => {
                    let mut items = Vec::new();
                    for (number, field) in fields(list)? {
                        if let (1, Field::Bytes(item)) = (number, field) {
                            items.push(decode_value(item, depth + 1)?);
                        }
                    }
                    Value::Array(items)
                }
                (_, Field::Fixed32 | Field::Varint(_) | Field::Fixed64(_) | Field::Bytes(_)) => {
                    continue;
                }
            };
        }
        Some(value)
    }

    /// A JSON number for a double: integers (as JWT times are) written as integers.
    fn json_number(f: f64) -> Option<Value> {
        if !f.is_finite() {
            return None;
        }
        if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
            return Some(Value::Number(Number::from(f as i64)));
        }
        Number::from_f64(f).map(Value::Number)
    }
}

/// A query string's parameters, percent-decoded, each with its values in order.
pub fn parse_query(query: &str) -> BTreeMap<String, Vec<String>> {
    let mut parsed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        parsed
            .entry(percent_decode(k))
            .or_default()
            .push(percent_decode(v));
    }
    parsed
}

/// The header and claims of a compact JWS, decoded but not verified.
fn decode_jwt(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (header, claims, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    // docket's JSON rule first: claims with a repeated name would be read one way here and
    // another by whatever verifies the token.
    let decode = |part: &str| -> Option<Value> {
        let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
        docket_ledger::json::check_bytes(&bytes).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    // `verified: false`: the filter decodes the token, it does not check its signature; the
    // record says so, so nobody reads these claims as proven.
    Some(json!({"header": decode(header)?, "claims": decode(claims)?, "verified": false}))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How the policy answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// For a deny: a status, body and headers the policy chose, over the configured ones.
    pub http_status: Option<u32>,
    pub body: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// Reads a result: `true`, or `{"allowed": true, …}`; anything else (undefined, `false`, other
/// documents) denies.
pub fn verdict(result: Option<&str>) -> Verdict {
    let value: Value = result
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    match &value {
        Value::Bool(allowed) => Verdict {
            allowed: *allowed,
            http_status: None,
            body: None,
            headers: Vec::new(),
        },
        Value::Object(map) => Verdict {
            allowed: map.get("allowed") == Some(&Value::Bool(true)),
            http_status: map
                .get("http_status")
                .and_then(Value::as_u64)
                .map(|s| s as u32),
            body: map.get("body").and_then(Value::as_str).map(str::to_string),
            headers: map
                .get("headers")
                .and_then(Value::as_object)
                .map(|h| {
                    h.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
        },
        _ => Verdict {
            allowed: false,
            http_status: None,
            body: None,
            headers: Vec::new(),
        },
    }
}

/// The labels of every event the filter sends: the configured ones, with `type` and `version`.
pub fn event_labels(config: &Config) -> Map<String, Value> {
    let mut labels = config.labels.clone();
    labels
        .entry("type".to_string())
        .or_insert_with(|| json!("docket-envoy"));
    labels
        .entry("version".to_string())
        .or_insert_with(|| json!(env!("CARGO_PKG_VERSION")));
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// protobuf's encoding of a length-delimited field.
    fn pb_bytes(number: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2];
        let mut len = payload.len();
        while len >= 0x80 {
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(payload);
        out
    }

    fn pb_entry(key: &str, value: &[u8]) -> Vec<u8> {
        let mut entry = pb_bytes(1, key.as_bytes());
        entry.extend(pb_bytes(2, value));
        pb_bytes(1, &entry)
    }

    #[test]
    fn jwt_authn_metadata_is_read_as_protobuf_struct() {
        // {"verified_jwt": {"sub": "alice", "exp": 1.7e9, "admin": true, "roles": ["a"],
        //  "ratio": 0.5, "none": null}}
        let number = |f: f64| {
            let mut v = vec![(2 << 3) | 1];
            v.extend_from_slice(&f.to_le_bytes());
            v
        };
        let mut claims = Vec::new();
        claims.extend(pb_entry("sub", &pb_bytes(3, b"alice")));
        claims.extend(pb_entry("exp", &number(1.7e9)));
        claims.extend(pb_entry("admin", &[4 << 3, 1]));
        claims.extend(pb_entry(
            "roles",
            &pb_bytes(6, &pb_bytes(1, &pb_bytes(3, b"a"))),
        ));
        claims.extend(pb_entry("ratio", &number(0.5)));
        claims.extend(pb_entry("none", &[1 << 3, 0]));
        let outer = pb_entry("verified_jwt", &pb_bytes(5, &claims));
        // As Envoy hands over `metadata`: filter_metadata {"envoy.filters.http.jwt_authn": …}.
        let metadata = pb_entry("envoy.filters.http.jwt_authn", &outer);
        assert_eq!(
            filter_metadata_from_protobuf(&metadata, "envoy.filters.http.jwt_authn"),
            struct_from_protobuf(&outer)
        );
        assert!(filter_metadata_from_protobuf(&metadata, "other").is_none());
        let decoded = struct_from_protobuf(&outer).unwrap();
        assert_eq!(
            Value::Object(decoded),
            json!({"verified_jwt": {"sub": "alice", "exp": 1_700_000_000, "admin": true,
                   "roles": ["a"], "ratio": 0.5, "none": null}})
        );
        // A name twice, a truncated field, a NaN: not a Struct docket reads.
        let mut twice = pb_entry("a", &pb_bytes(3, b"x"));
        twice.extend(pb_entry("a", &pb_bytes(3, b"y")));
        assert!(struct_from_protobuf(&twice).is_none());
        assert!(struct_from_protobuf(&outer[..outer.len() - 1]).is_none());
        assert!(struct_from_protobuf(&pb_entry("n", &number(f64::NAN))).is_none());
        // Verified claims go into the input as such, and the header is then never decoded.
        let h = headers(&[
            (":path", "/"),
            (
                "authorization",
                "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.x",
            ),
        ]);
        let input = |claims| {
            build_input(
                &Request {
                    headers: &h,
                    source_address: None,
                    destination_address: None,
                    claims,
                },
                &[],
            )
        };
        let verified = input(Claims::Verified(Some(json!({"sub": "alice"}))));
        assert_eq!(
            verified["jwt"],
            json!({"claims": {"sub": "alice"}, "verified": true})
        );
        assert!(input(Claims::Verified(None)).get("jwt").is_none());
        assert_eq!(input(Claims::Unverified)["jwt"]["claims"]["sub"], "mallory");
    }

    #[test]
    fn input_has_opa_envoy_shape_and_jwt_claims() {
        // {"alg":"none"} . {"sub":"alice","roles":["admin"]} . sig
        let jwt = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"sub":"alice","roles":["admin"]}"#)
        );
        let h = headers(&[
            (":method", "GET"),
            (":path", "/api/v1/items%20x?id=7&tag=a&tag=b+c"),
            (":authority", "shop.local"),
            ("x-trace", "1"),
            ("x-trace", "2"),
            ("cookie", "secret"),
            ("authorization", &format!("Bearer {jwt}")),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("x-api-key", "sk-live"),
        ]);
        let input = build_input(
            &Request {
                headers: &h,
                source_address: Some("127.0.0.1:5000".into()),
                destination_address: None,
                claims: Claims::Unverified,
            },
            &["cookie".to_string()],
        );
        let http = &input["attributes"]["request"]["http"];
        assert_eq!(http["method"], "GET");
        assert_eq!(http["host"], "shop.local");
        assert_eq!(http["headers"], json!({"x-trace": "1,2"}));
        assert_eq!(input["parsed_path"], json!(["api", "v1", "items x"]));
        assert_eq!(
            input["parsed_query"],
            json!({"id": ["7"], "tag": ["a", "b c"]})
        );
        assert_eq!(input["jwt"]["claims"]["sub"], "alice");
        assert_eq!(input["jwt"]["verified"], false);
        // Another spelling of the scheme, or claims that read two ways: no claims at all.
        let token_input = |authorization: &str| {
            let h = headers(&[(":path", "/"), ("authorization", authorization)]);
            build_input(
                &Request {
                    headers: &h,
                    source_address: None,
                    destination_address: None,
                    claims: Claims::Unverified,
                },
                &[],
            )
        };
        assert!(token_input(&format!("bearer {jwt}")).get("jwt").is_none());
        let doubled = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"roles":["user"],"roles":["admin"]}"#)
        );
        assert!(
            token_input(&format!("Bearer {doubled}"))
                .get("jwt")
                .is_none()
        );
        assert_eq!(input["attributes"]["source"]["address"], "127.0.0.1:5000");
    }

    #[test]
    fn verdicts_deny_unless_explicitly_allowed() {
        assert!(verdict(Some("true")).allowed);
        assert!(!verdict(Some("false")).allowed);
        assert!(!verdict(None).allowed);
        assert!(!verdict(Some("\"yes\"")).allowed);
        let v = verdict(Some(
            r#"{"allowed":false,"http_status":401,"body":"no","headers":{"www-authenticate":"Bearer"}}"#,
        ));
        assert_eq!(
            v,
            Verdict {
                allowed: false,
                http_status: Some(401),
                body: Some("no".into()),
                headers: vec![("www-authenticate".into(), "Bearer".into())],
            }
        );
    }

    #[test]
    fn config_errors_say_what_is_wrong() {
        assert!(Config::parse(b"{}").unwrap_err().contains("missing field"));
        let ok = br#"{"policies":{"a.rego":"package a\nallow := true"},"query":"a/allow","docket":{"cluster":"docket","token":"0123456789abcdef0123"}}"#;
        let config = Config::parse(ok).unwrap();
        assert_eq!(config.deny.status, 403);
        let mut engine = config.engine().unwrap();
        let d = engine.evaluate("a/allow", Some("{}")).unwrap();
        assert_eq!(d.result.as_deref(), Some("true"));
        let bad = br#"{"policies":{"a.rego":"package a\nallow if {"},"query":"a/allow","docket":{"cluster":"docket","token":"0123456789abcdef0123"}}"#;
        let Err(e) = Config::parse(bad).unwrap().engine() else {
            panic!("a module that does not parse was accepted");
        };
        assert!(e.contains("a.rego"), "{e}");
        let no_slash = br#"{"policies":{"a.rego":"package a"},"query":"a/allow","docket":{"cluster":"docket","token":"0123456789abcdef0123"},"data_api":{"prefix":"v1/data","paths":[""]}}"#;
        let e = Config::parse(no_slash).unwrap_err();
        assert!(e.contains("data_api.prefix"), "{e}");
    }

    #[test]
    fn data_api_paths_are_the_opa_paths_under_the_prefix() {
        let api: DataApiConfig = serde_json::from_str(r#"{"paths":[""]}"#).unwrap();
        assert_eq!(api.prefix, "/v1/data");
        assert_eq!(
            api.data_path("/v1/data/rbac/allow").as_deref(),
            Some("rbac/allow")
        );
        assert_eq!(
            api.data_path("/v1/data/a//b/?pretty=true").as_deref(),
            Some("a/b")
        );
        assert_eq!(api.data_path("/v1/data/a%20b/c").as_deref(), Some("a b/c"));
        assert_eq!(api.data_path("/v1/data").as_deref(), Some(""));
        assert_eq!(api.data_path("/v1/data?x=1").as_deref(), Some(""));
        assert_eq!(api.data_path("/v1/database/x"), None);
        assert_eq!(api.data_path("/api/v1/data/x"), None);
        let trailing = DataApiConfig {
            prefix: "/decide/".into(),
            max_body_bytes: 10,
            paths: Some(vec!["".into()]),
        };
        assert_eq!(trailing.data_path("/decide/x").as_deref(), Some("x"));
        // Only the documents listed: the rest of `data` is not the Data API's to give away.
        let narrow: DataApiConfig = serde_json::from_str(r#"{"paths":["envoy/authz/"]}"#).unwrap();
        assert_eq!(
            narrow.data_path("/v1/data/envoy/authz/decision").as_deref(),
            Some("envoy/authz/decision")
        );
        assert_eq!(
            narrow.data_path("/v1/data/envoy/authz").as_deref(),
            Some("envoy/authz")
        );
        assert_eq!(narrow.data_path("/v1/data/envoy/authzx"), None);
        assert_eq!(narrow.data_path("/v1/data/secrets/upstream_api_key"), None);
        assert_eq!(narrow.data_path("/v1/data"), None);
        let unlisted = br#"{"policies":{"a.rego":"package a"},"query":"a/allow","docket":{"cluster":"docket","token":"0123456789abcdef0123"},"data_api":{}}"#;
        let e = Config::parse(unlisted).unwrap_err();
        assert!(e.contains("data_api.paths"), "{e}");
    }

    #[test]
    fn the_logging_rules_masks_are_applied_before_the_event_leaves_the_proxy() {
        let config = serde_json::json!({
            "policies": {
                "a.rego": "package a\nallow := true",
                "log.rego": "package system.log\nmask contains \"/input/attributes/source/address\"",
            },
            "query": "a/allow",
            "docket": {"cluster": "docket", "token": "0123456789abcdef0123"},
        });
        let config = Config::parse(config.to_string().as_bytes()).unwrap();
        let mut engine = config.engine().unwrap();
        let input = r#"{"attributes":{"source":{"address":"203.0.113.9"},"request":{"http":{"method":"GET"}}}}"#;
        let decision = engine.evaluate("a/allow", Some(input)).unwrap();
        assert_eq!(decision.log.mask.len(), 1);
        let event = docket_wire::events::decision_event(
            "id",
            &event_labels(&config),
            &decision,
            None,
            0,
            None,
            &mut || [5; 32],
        )
        .unwrap();
        let text = event.to_string();
        assert!(!text.contains("203.0.113.9"), "{text}");
        assert_eq!(
            event["input"]["attributes"]["request"]["http"]["method"],
            "GET"
        );
        assert_eq!(
            event["erased"],
            serde_json::json!(["/input/attributes/source/address"])
        );
        let commitment = docket_ledger::masking::commitment(&[5; 32], r#""203.0.113.9""#);
        assert_eq!(
            event["commitments"]["/input/attributes/source/address"],
            commitment
        );
        assert_eq!(event["result"], true);

        // Without logging rules the event carries the decision as made.
        let mut plain = decision.clone();
        plain.log = Default::default();
        let event = docket_wire::events::decision_event(
            "id",
            &event_labels(&config),
            &plain,
            None,
            0,
            None,
            &mut || [5; 32],
        )
        .unwrap();
        assert_eq!(
            event["input"]["attributes"]["source"]["address"],
            "203.0.113.9"
        );
        assert!(event.get("erased").is_none());
    }

    #[test]
    fn a_failed_evaluation_is_sent_with_its_error_and_its_masks() {
        let config = serde_json::json!({
            "policies": {
                // Two values for one complete rule: every evaluation fails.
                "a.rego": "package a\nallow := true\nallow := false if input.attributes",
                "log.rego": "package system.log\nmask contains \"/input/attributes/source/address\"",
            },
            "query": "a/allow",
            "docket": {"cluster": "docket", "token": "0123456789abcdef0123"},
        });
        let config = Config::parse(config.to_string().as_bytes()).unwrap();
        let mut engine = config.engine().unwrap();
        let input = r#"{"attributes":{"source":{"address":"203.0.113.9"}}}"#;
        let error = engine.evaluate("a/allow", Some(input)).unwrap_err();
        let failed = engine.failed_decision("a/allow", Some(input));
        let message = error.to_string();
        let event = docket_wire::events::decision_event(
            "id",
            &event_labels(&config),
            &failed,
            Some(&message),
            0,
            None,
            &mut || [5; 32],
        )
        .unwrap();
        assert!(!event.to_string().contains("203.0.113.9"), "{event}");
        assert_eq!(
            event["erased"],
            serde_json::json!(["/input/attributes/source/address"])
        );
        assert!(event.get("result").is_none());
        assert_eq!(event["error"]["code"], "internal_error");
        assert_eq!(event["error"]["message"], message.as_str());
    }
}
