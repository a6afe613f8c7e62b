//! The example service, in process on loopback: answers are sealed before they are sent, a
//! proof checks out, a restart seals no policy twice, and the log verifies.

use docket_embed::{AsyncDocket, Docket, PublicKey};
use serde_json::{Value, json};

async fn serve(
    dir: &std::path::Path,
) -> (String, AsyncDocket, PublicKey, tokio::task::JoinHandle<()>) {
    let key = docket_embed::key_file(dir.join("service.key"), "embed.test/authz").unwrap();
    let public = key.public().clone();
    let docket = AsyncDocket::new(Docket::open(dir.join("log"), key).unwrap());
    docket_embed_example::load_policy(&docket).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = docket_embed_example::app(docket.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, docket, public, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_sealed_and_provable() {
    let dir = std::env::temp_dir().join(format!("docket-embed-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (base, docket, public, task) = serve(&dir).await;
    let client = reqwest::Client::new();
    let ask = |user: &str, action: &str| {
        let request = client
            .post(format!("{base}/authorize"))
            .json(&json!({"user": user, "action": action}));
        async move { request.send().await }
    };
    // Concurrent requests: group-committed together, each answered with its own entry.
    let answers = futures_join(vec![
        ask("alice", "delete"),
        ask("bob", "delete"),
        ask("bob", "read"),
    ])
    .await;
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 403, 200]);
    let ids: Vec<String> = answers
        .iter()
        .map(|(_, b)| b["decision_id"].as_str().unwrap().to_string())
        .collect();
    // Not JSON: refused, nothing sealed.
    let before = docket.size().await.unwrap();
    let bad = client
        .post(format!("{base}/authorize"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(docket.size().await.unwrap(), before);
    // A decision's proof.
    let proof: Value = client
        .get(format!("{base}/proof/{}", ids[1]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(proof["tree_size"].as_u64().unwrap() > proof["seq"].as_u64().unwrap());
    assert_eq!(
        client
            .get(format!("{base}/proof/nope"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    task.abort();
    drop(docket);
    // Started again with the same policy: nothing new sealed for it; the log verifies.
    let size = before;
    let (_, docket, _, task) = serve(&dir).await;
    assert_eq!(docket.size().await.unwrap(), size);
    task.abort();
    drop(docket);
    let verified =
        tokio::task::spawn_blocking(move || docket_embed::verify(dir.join("log"), &public))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(verified.decisions, 3);
    assert_eq!(verified.entries, size);
}

/// Sends the requests at once and collects (status, JSON body) in order.
async fn futures_join(
    requests: Vec<
        impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static,
    >,
) -> Vec<(u16, Value)> {
    let handles: Vec<_> = requests
        .into_iter()
        .map(|r| {
            tokio::spawn(async move {
                let response = r.await.unwrap();
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
