//! OPA's REST API, as existing OPA clients call it: the Data API (decisions), the Policy API,
//! `POST /` and `GET /health`. Same paths, bodies, status codes and error shapes as OPA
//! (docs/api.md lists the differences).

use crate::policies::{EvalError, Generation, PolicySet};
use crate::{ApiError, AppState, version_json};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use docket_runtime::{CallError, Describe, EntryKind, PolicyError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type AppResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", axum::routing::post(default_decision))
        .route(
            "/v1/data",
            get(get_data_root)
                .post(post_data_root)
                .put(put_data_root)
                .patch(patch_data_root)
                .delete(delete_data_root),
        )
        .route(
            "/v1/data/",
            get(get_data_root)
                .post(post_data_root)
                .put(put_data_root)
                .patch(patch_data_root)
                .delete(delete_data_root),
        )
        .route(
            "/v1/data/{*path}",
            get(get_data)
                .post(post_data)
                .put(put_data)
                .patch(patch_data)
                .delete(delete_data),
        )
        .route("/v1/policies", get(list_policies))
        // OPA answers both spellings; OPA's clients probe the one with the slash.
        .route("/v1/policies/", get(list_policies))
        .route(
            "/v1/policies/{*id}",
            put(put_policy).get(get_policy).delete(delete_policy),
        )
        .route("/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/query", get(not_supported).post(not_supported))
        .route("/v1/compile", get(not_supported).post(not_supported))
        .route(
            "/v1/compile/{*path}",
            get(not_supported).post(not_supported),
        )
        .route("/v1/config", get(config))
        .route("/metrics", get(metrics))
}

fn eval_error(e: EvalError) -> ApiError {
    match e {
        EvalError::Policy(PolicyError::Input(m)) => {
            ApiError::bad_request(format!("body contains malformed input document: {m}"))
        }
        EvalError::Policy(e) => ApiError::internal(e.describe()),
        EvalError::Internal(e) => ApiError::internal(format!("{e:#}")),
    }
}

/// Evaluates, seals, waits for durability, and answers OPA's `{"result", "decision_id"}`.
/// `wrap` false answers the bare result (for `POST /`).
async fn decide(
    state: &AppState,
    path: &str,
    input: Option<String>,
    wrap: bool,
    params: &HashMap<String, String>,
) -> AppResult<Response> {
    let started = std::time::Instant::now();
    let pretty = wants(params, "pretty");
    // OPA's query tracer has no counterpart in docket: say so before anything is sealed,
    // rather than answer without the explanation asked for.
    if let Some(explain) = params
        .get("explain")
        .filter(|e| !e.is_empty() && *e != "off")
    {
        return Err(ApiError::bad_request(format!(
            "docket does not explain decisions (explain={explain}): it has no query tracer; \
             ask without explain (nothing was evaluated or logged)"
        )));
    }
    let input_bytes = input.as_ref().map_or(0, String::len);
    if input_bytes > state.max_input {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_parameter",
            format!(
                "the input is {input_bytes} bytes; this server seals inputs of at most {} bytes (--max-input-bytes); nothing was logged",
                state.max_input
            ),
        ));
    }
    let decision = state
        .pool
        .evaluate(path.to_string(), input)
        .await
        .map_err(eval_error)?;
    let evaluated = started.elapsed();
    let sealed = state.appender.decision(decision).await?;
    let sealed_after = started.elapsed();
    let mut headers = HeaderMap::new();
    // A decision the logging rules dropped has no entry (it is counted in a tally entry), and,
    // as in OPA when a decision is not logged, no decision_id.
    if let Some(entry) = &sealed.entry {
        headers.insert(
            "x-docket-decision-id",
            HeaderValue::from_str(&entry.decision_id).expect("a UUID is a header value"),
        );
        headers.insert("x-docket-seq", HeaderValue::from(entry.seq));
        headers.insert(
            "x-docket-entry-hash",
            HeaderValue::from_str(&entry.entry_hash).expect("hex is a header value"),
        );
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if !wrap {
        let Some(result) = sealed.result else {
            // Sealed all the same: the client is charged for it.
            return Ok(charged(ApiError::new(
                StatusCode::NOT_FOUND,
                "undefined_document",
                format!(
                    "document missing: data.{} (the default decision; set it with --default-decision)",
                    path.replace('/', ".")
                ),
            )
            .into_response(), input_bytes));
        };
        return Ok(charged(
            (headers, format_json(&result, pretty)).into_response(),
            input_bytes,
        ));
    }
    let decision_id = sealed.entry.as_ref().map(|e| e.decision_id.as_str());
    let body = if wants(params, "metrics") {
        // OPA's timer names where they mean the same; docket's own for sealing (evaluated,
        // sealed and made durable before this answer).
        let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        docket_wire::data_response_with_metrics(
            decision_id,
            sealed.result.as_deref(),
            &[
                ("timer_rego_query_eval_ns", ns(evaluated)),
                ("timer_docket_seal_ns", ns(sealed_after - evaluated)),
                ("timer_server_handler_ns", ns(started.elapsed())),
            ],
        )
    } else {
        docket_wire::data_response(decision_id, sealed.result.as_deref())
    };
    Ok(charged(
        (headers, format_json(&body, pretty)).into_response(),
        input_bytes,
    ))
}

/// Marks a response as having sealed `bytes` of input, for the client's write quota.
fn charged(mut response: Response, bytes: usize) -> Response {
    response
        .extensions_mut()
        .insert(crate::guard::SealedInput(bytes));
    response
}

fn format_json(text: &str, pretty: bool) -> String {
    if !pretty {
        return text.to_string();
    }
    docket_wire::pretty_json(text)
}

fn wants(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.is_empty() || v == "true")
}

fn input_from_body(body: &Bytes) -> AppResult<Option<String>> {
    Ok(docket_wire::data_request_input(body)?)
}

async fn post_data(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> AppResult<Response> {
    let input = input_from_body(&body)?;
    decide(&state, &path, input, true, &params).await
}

async fn post_data_root(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> AppResult<Response> {
    let input = input_from_body(&body)?;
    decide(&state, "", input, true, &params).await
}

async fn get_data(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> AppResult<Response> {
    let input = params.get("input").cloned();
    decide(&state, &path, input, true, &params).await
}

async fn get_data_root(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> AppResult<Response> {
    let input = params.get("input").cloned();
    decide(&state, "", input, true, &params).await
}

/// `POST /`: the body is the input itself; the answer is the bare result.
async fn default_decision(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> AppResult<Response> {
    let input = docket_wire::default_decision_input(&body)?;
    let path = state.default_decision.clone();
    decide(&state, &path, input, false, &params).await
}

/// Checks a changed policy set, seals the change, and publishes it: only a change that is in
/// the log takes effect.
pub(crate) async fn change_policy(
    state: &AppState,
    set: PolicySet,
    record: impl FnOnce(&Value) -> Value,
) -> AppResult<()> {
    let pool = Arc::clone(&state.pool);
    let checked = {
        let set = set.clone();
        tokio::task::spawn_blocking(move || pool.check(&set))
            .await
            .map_err(|e| ApiError::internal(format!("{e}")))?
    };
    let (version, warm) = checked.map_err(|e| match e {
        CallError::Refused(e) => compile_error(e),
        stopped => ApiError::internal(stopped.to_string()),
    })?;
    let record = record(&version_json(&version));
    state
        .appender
        .record(EntryKind::PolicyChange, record.to_string())
        .await?;
    state.metrics.policy_changes.inc();
    let number = state.pool.current().number + 1;
    tracing::info!(version = %version.digest, generation = number, "policy change sealed");
    state.pool.publish(
        Generation {
            number,
            set,
            version,
        },
        warm,
    );
    Ok(())
}

fn compile_error(e: PolicyError) -> ApiError {
    let (code, module, message) = match &e {
        PolicyError::Parse((id, m)) => ("rego_parse_error", Some(id.clone()), m.clone()),
        other => ("rego_compile_error", None, other.describe()),
    };
    let mut error = json!({"code": code, "message": message});
    if let Some(module) = module {
        error["location"] = json!({"file": module});
    }
    ApiError {
        errors: Some(json!([error])),
        ..ApiError::bad_request("error(s) occurred while compiling module(s)")
    }
}

/// A write's JSON body, read as docket reads JSON everywhere (docket_ledger::json), with the
/// integers it cannot hold exactly refused; `what` names the body in the errors, `holding` what
/// holds such an integer.
fn json_body(body: &Bytes, what: &str, holding: &str) -> AppResult<Value> {
    let malformed = |e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!("body contains malformed {what}: {e}"))
    };
    docket_ledger::json::check_bytes(body).map_err(|e| malformed(&e))?;
    if let Some(n) = std::str::from_utf8(body)
        .ok()
        .and_then(docket_ledger::json::integer_beyond_64_bits)
    {
        return Err(ApiError::bad_request(format!(
            "body contains a {holding} docket cannot hold exactly: {}",
            crate::policies::integer_too_large(n)
        )));
    }
    serde_json::from_slice(body).map_err(|e| malformed(&e))
}

/// Data under an active bundle's roots is the bundle's: OPA refuses API writes there.
fn bundle_scope(set: &crate::policies::PolicySet, path: &[String]) -> AppResult<()> {
    crate::bundle::check_write_scope(set, &path.join("/")).map_err(ApiError::bad_request)
}

async fn put_data(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    body: Bytes,
) -> AppResult<Response> {
    put_data_at(&state, docket_wire::data_path(&path), &body).await
}

async fn put_data_root(State(state): State<Arc<AppState>>, body: Bytes) -> AppResult<Response> {
    put_data_at(&state, Vec::new(), &body).await
}

async fn put_data_at(state: &AppState, path: Vec<String>, body: &Bytes) -> AppResult<Response> {
    let value = json_body(body, "data document", "data document")?;
    let _writer = state.policy_writer.lock().await;
    let mut set = state.pool.current().set.clone();
    bundle_scope(&set, &path)?;
    set.put_data(&path, value.clone())
        .map_err(|m| ApiError::new(StatusCode::NOT_FOUND, "resource_conflict", m))?;
    change_policy(state, set, |version| {
        json!({"op": "put_data", "path": format!("/{}", path.join("/")), "value": value, "policy_version": version})
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn patch_data(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    body: Bytes,
) -> AppResult<Response> {
    patch_data_at(&state, docket_wire::data_path(&path), &body).await
}

async fn patch_data_root(State(state): State<Arc<AppState>>, body: Bytes) -> AppResult<Response> {
    patch_data_at(&state, Vec::new(), &body).await
}

/// `PATCH /v1/data/{path}`: JSON Patch operations (add, remove, replace) under `path`, applied
/// all or none and sealed as one `patch_data` policy change before they take effect.
async fn patch_data_at(state: &AppState, path: Vec<String>, body: &Bytes) -> AppResult<Response> {
    let Value::Array(ops) = json_body(body, "patch", "value")? else {
        return Err(ApiError::bad_request(
            "body must be a JSON array of patch operations ({\"op\": \"add\"|\"remove\"|\"replace\", \"path\", \"value\"})",
        ));
    };
    if ops.is_empty() {
        // Nothing to change, nothing to seal.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let _writer = state.policy_writer.lock().await;
    let mut set = state.pool.current().set.clone();
    bundle_scope(&set, &path)?;
    set.patch_data(&path, &ops).map_err(|e| match e {
        crate::policies::PatchError::NotFound(m) => ApiError::not_found(m),
        crate::policies::PatchError::Invalid(m) => ApiError::bad_request(m),
    })?;
    change_policy(state, set, |version| {
        json!({"op": "patch_data", "path": format!("/{}", path.join("/")), "patch": ops, "policy_version": version})
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_data(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
) -> AppResult<Response> {
    delete_data_at(&state, docket_wire::data_path(&path)).await
}

async fn delete_data_root(State(state): State<Arc<AppState>>) -> AppResult<Response> {
    delete_data_at(&state, Vec::new()).await
}

async fn delete_data_at(state: &AppState, path: Vec<String>) -> AppResult<Response> {
    let _writer = state.policy_writer.lock().await;
    let mut set = state.pool.current().set.clone();
    bundle_scope(&set, &path)?;
    if !set.delete_data(&path) {
        return Err(ApiError::not_found(format!(
            "storage_not_found_error: /{}: document does not exist",
            path.join("/")
        )));
    }
    change_policy(state, set, |version| {
        json!({"op": "delete_data", "path": format!("/{}", path.join("/")), "policy_version": version})
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn put_policy(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> AppResult<Response> {
    let source = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the policy is not UTF-8 text"))?;
    let _writer = state.policy_writer.lock().await;
    let mut set = state.pool.current().set.clone();
    // The module replaced, if any, and the new one: neither may belong to a bundle.
    if let Some(old) = set.modules.get(&id) {
        crate::bundle::check_module_scope(&set, old).map_err(ApiError::bad_request)?;
    }
    crate::bundle::check_module_scope(&set, &source).map_err(ApiError::bad_request)?;
    set.modules.insert(id.clone(), source.clone());
    change_policy(&state, set, |version| {
        json!({"op": "put_policy", "id": id, "source": source, "policy_version": version})
    })
    .await?;
    Ok(axum::Json(json!({})).into_response())
}

async fn get_policy(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let generation = state.pool.current();
    let Some(source) = generation.set.modules.get(&id) else {
        return Err(policy_not_found(&id));
    };
    Ok(axum::Json(json!({"result": {"id": id, "raw": source}})).into_response())
}

fn policy_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("storage_not_found_error: policy id {id:?}"))
}

async fn list_policies(State(state): State<Arc<AppState>>) -> AppResult<Response> {
    let generation = state.pool.current();
    let result: Vec<Value> = generation
        .set
        .modules
        .iter()
        .map(|(id, raw)| json!({"id": id, "raw": raw}))
        .collect();
    Ok(axum::Json(json!({"result": result})).into_response())
}

async fn delete_policy(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let _writer = state.policy_writer.lock().await;
    let mut set = state.pool.current().set.clone();
    let Some(old) = set.modules.get(&id) else {
        return Err(policy_not_found(&id));
    };
    crate::bundle::check_module_scope(&set, old).map_err(ApiError::bad_request)?;
    set.modules.remove(&id);
    change_policy(
        &state,
        set,
        |version| json!({"op": "delete_policy", "id": id, "policy_version": version}),
    )
    .await?;
    Ok(axum::Json(json!({})).into_response())
}

/// OPA's health check: 200 `{}` when the server can answer decisions. docket also answers 500
/// when the log cannot be written, since then it cannot answer any.
async fn health(State(state): State<Arc<AppState>>) -> Response {
    match state.appender.failure() {
        None => (StatusCode::OK, axum::Json(json!({}))).into_response(),
        Some(why) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": format!("the log cannot be written: {why}")})),
        )
            .into_response(),
    }
}

/// OPA routes docket does not serve, answered in OPA's error shape with what to use instead
/// rather than as unknown routes.
async fn not_supported(uri: axum::http::Uri) -> ApiError {
    let message = if uri.path().starts_with("/v1/compile") {
        "docket does not do partial evaluation (OPA's /v1/compile): its evaluator (regorus) \
         has none. Evaluate complete decisions through the Data API (POST /v1/data/<path>), \
         each of which is sealed"
    } else {
        "docket does not run ad-hoc queries (OPA's /v1/query) yet: query a rule through the Data \
         API (POST /v1/data/<package path>/<rule>), which evaluates and seals the decision"
    };
    ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", message)
}

/// OPA's status API: the status plugin's snapshot (bundles, plugins, labels).
async fn status(State(state): State<Arc<AppState>>) -> Response {
    let snapshot = state.status.snapshot(&state.pool.current().set);
    axum::Json(json!({ "result": snapshot })).into_response()
}

/// OPA's config API: the configuration in force, without secrets.
async fn config(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(json!({ "result": state.active_config })).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
