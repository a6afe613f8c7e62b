//! `docket-embed-example [--dir DIR] [--addr ADDR]`: the service of `lib.rs` on a log in DIR
//! (default `embed-data`), signing with DIR/service.key (created, mode 0600, on the first start).

use docket_embed::{AsyncDocket, Docket};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut addr) = (PathBuf::from("embed-data"), "127.0.0.1:8282".to_string());
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--dir", Some(v)) => dir = PathBuf::from(v),
            ("--addr", Some(v)) => addr = v,
            _ => return Err("usage: docket-embed-example [--dir DIR] [--addr ADDR]".into()),
        }
    }
    std::fs::create_dir_all(&dir)?;
    let key = docket_embed::key_file(dir.join("service.key"), "embed.example/authz")?;
    let docket = AsyncDocket::new(Docket::open(dir.join("log"), key)?);
    docket_embed_example::load_policy(&docket).await?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "docket-embed-example: listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, docket_embed_example::app(docket))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
