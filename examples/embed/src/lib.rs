//! An HTTP service that embeds docket: `POST /authorize` answers whether a user may do an
//! action, and the answer is sealed into the service's own log, durable, before it is sent.
//! `GET /proof/{decision_id}` proves a decision is in the log. Its policy is in `authz.rego`.
//!
//! The whole integration is [`app`]: an [`AsyncDocket`] in the router's state, one call per
//! request. `main.rs` opens the log and serves.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use docket_embed::{AsyncDocket, Error};
use serde_json::{Value, json};

/// The service's policy: admins may do anything, everyone else may read.
pub const POLICY: &str = include_str!("authz.rego");

/// The routes, over a log whose policy is loaded ([`POLICY`]).
pub fn app(docket: AsyncDocket) -> Router {
    Router::new()
        .route("/authorize", post(authorize))
        .route("/proof/{decision_id}", get(proof))
        .with_state(docket)
}

/// Loads the service's policy and its data (who the admins are): sealed into the log the first
/// time, and again only when they change. Call once after opening the log.
pub async fn load_policy(docket: &AsyncDocket) -> Result<(), Error> {
    docket
        .set_policies(&[("authz.rego", POLICY)], r#"{"admins":["alice"]}"#)
        .await
        .map(|_| ())
}

async fn authorize(State(docket): State<AsyncDocket>, body: String) -> Response {
    match docket.decide("authz/allow", &body).await {
        Ok(receipt) => {
            let allowed = receipt.result.as_deref() == Some("true");
            let status = if allowed {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            (
                status,
                axum::Json(json!({
                    "allowed": allowed,
                    "decision_id": receipt.decision_id,
                    "seq": receipt.seq,
                })),
            )
                .into_response()
        }
        // The request could not be decided (not JSON, say): nothing was sealed, nothing allowed.
        Err(Error::Decision(why)) => {
            (StatusCode::BAD_REQUEST, axum::Json(json!({"error": why}))).into_response()
        }
        // The log could not make the decision durable: fail closed.
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn proof(State(docket): State<AsyncDocket>, Path(id): Path<String>) -> Response {
    match docket.prove(&id).await {
        Ok(p) => axum::Json(json!({
            "seq": p.seq,
            "entry_hash": p.entry_hash,
            "tree_size": p.tree_size,
            "hashes": p.hashes,
            "checkpoint": p.checkpoint,
        }))
        .into_response(),
        Err(Error::NotFound(_)) => (
            StatusCode::NOT_FOUND,
            axum::Json(Value::String(format!("no decision {id}"))),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}
