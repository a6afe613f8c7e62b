//! The log verifier page at `/ui`: `crates/docket-web/www` and the wasm-bindgen output of
//! `crates/docket-web` (built by this crate's `build.rs`), embedded in the binary. The same files work
//! from any static file server (`docket ui --out DIR` writes them).

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The page's files: name, media type, bytes.
pub const FILES: [(&str, &str, &[u8]); 5] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../../crates/docket-web/www/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../crates/docket-web/www/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../crates/docket-web/www/style.css"),
    ),
    (
        "docket_web.js",
        "text/javascript; charset=utf-8",
        include_bytes!(concat!(env!("DOCKET_WEB_DIR"), "/docket_web.js")),
    ),
    (
        "docket_web_bg.wasm",
        "application/wasm",
        include_bytes!(concat!(env!("DOCKET_WEB_DIR"), "/docket_web_bg.wasm")),
    ),
];

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { file("index.html") }))
        .route(
            "/ui/{name}",
            get(|Path(name): Path<String>| async move { file(&name) }),
        )
}

/// The page runs only its own scripts and WebAssembly, and may read any docket server the user
/// names (server mode); nothing else loads, and it cannot be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     connect-src *; img-src 'self' data:; style-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

fn file(name: &str) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, media_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *media_type),
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("/ui/{name}: no such file\n")).into_response(),
    }
}

/// Writes the page's files into `dir`, for serving from anywhere.
pub fn write_files(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, _, bytes) in FILES {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
