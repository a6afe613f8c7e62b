//! The connection layer of `docket serve`: accepting, limits and timeouts, and a bounded
//! graceful shutdown. Requests go on to the axum router; this module only decides which
//! connections and bytes the server is willing to hold, and for how long.
//!
//! - **Connection limit.** At most `max_connections` connections are open. A new connection
//!   past the limit makes room by closing the connection that has been idle longest (no request
//!   in flight); if every connection is busy, the newcomer gets a `503` and is closed. So a
//!   flood of idle or slow connections cannot keep the server from answering, and the limit is
//!   kept below the open-file limit so `accept` itself never fails for lack of descriptors.
//! - **Header timeout.** A request head must arrive within `header_timeout` of its first byte.
//! - **Idle timeout.** A keep-alive connection with no request for `idle_timeout` is closed.
//! - **Body timeout.** A request body must arrive within `body_timeout` of its head, else `408`.
//! - **Shutdown.** On SIGTERM/SIGINT or [`crate::Server::stop`]: stop accepting, close idle
//!   connections, let requests in flight finish for up to `shutdown_timeout`, then drop the rest.
//!   A dropped request was never acknowledged; whatever was queued for the log is still
//!   committed by the appender before the process exits.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::metrics::Metrics;

/// How long and how much the server holds for any client (docs/api.md, "Limits").
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Descriptors kept free beside the connections: log segments, the component cache, accepts in
/// progress, evicted connections not closed yet.
const RESERVED_FDS: u64 = 128;

/// Connections told to close (evicted) may still hold their sockets for a moment; at most this
/// many beyond the limit, after which accepting waits for one to close.
const CLOSING_SLACK: usize = 32;

/// Raises the soft open-file limit to the hard one (as Go's runtime does) and returns how many
/// connections fit under it with [`RESERVED_FDS`] to spare.
pub fn connection_capacity() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to an initialized rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return usize::MAX;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let soft = limit.rlim_cur;
    if soft == libc::RLIM_INFINITY {
        return usize::MAX;
    }
    usize::try_from(soft.saturating_sub(RESERVED_FDS).max(8)).unwrap_or(usize::MAX)
}

/// What the watchdog of one connection knows about it.
struct ConnState {
    /// Requests the router is working on.
    in_flight: usize,
    /// When the connection last had no request in flight.
    idle_since: Instant,
    /// When the first byte of the next request head arrived (while idle).
    head_since: Option<Instant>,
    /// Chosen to make room: told to close, not chosen again.
    evicted: bool,
}

struct Conn {
    state: Mutex<ConnState>,
    /// Close this connection now if idle (eviction, shutdown), or once its requests finish.
    close: tokio::sync::Notify,
}

impl Conn {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnState> {
        self.state.lock().expect("connection state lock")
    }
}

/// The open connections, for eviction and shutdown.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            state: Mutex::new(ConnState {
                in_flight: 0,
                idle_since: Instant::now(),
                head_since: None,
                evicted: false,
            }),
            close: tokio::sync::Notify::new(),
        });
        self.conns
            .lock()
            .expect("registry lock")
            .insert(id, Arc::clone(&conn));
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.conns.lock().expect("registry lock").remove(&id);
    }

    fn len(&self) -> usize {
        self.conns.lock().expect("registry lock").len()
    }

    /// Closes the connection idle longest; false if every connection has a request in flight.
    fn evict_one(&self) -> bool {
        let conns = self.conns.lock().expect("registry lock");
        let victim = conns
            .values()
            .filter_map(|c| {
                let s = c.lock();
                // A connection part-way through a head is as good as idle: nothing of it has
                // been answered; prefer it, then the longest idle.
                (s.in_flight == 0 && !s.evicted)
                    .then(|| (s.head_since.is_none(), s.idle_since, Arc::clone(c)))
            })
            .min_by_key(|(no_head, since, _)| (*no_head, *since));
        match victim {
            Some((_, _, conn)) => {
                conn.lock().evicted = true;
                conn.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn close_all(&self) {
        for conn in self.conns.lock().expect("registry lock").values() {
            conn.close.notify_one();
        }
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` completes, then shuts down as the
/// module documentation says.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let registry = Arc::new(Registry::default());
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut accept_failures_logged = false;
    loop {
        // Evicted connections close on their own tasks; under CPU pressure the accept loop can
        // outrun them. Past the slack, accepting waits for a connection to finish rather than
        // hold more sockets than the limit allows for, so the open-file limit is never reached.
        let room = registry.len() < limits.max_connections + CLOSING_SLACK;
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept(), if room => accepted,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors or memory for a moment: wait a little instead of spinning;
                // open connections go on being served.
                if !accept_failures_logged {
                    tracing::warn!(error = %e, "accept failed; retrying (lower --max-connections or raise the open-file limit)");
                    accept_failures_logged = true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        accept_failures_logged = false;
        let _ = stream.set_nodelay(true);
        if registry.len() >= limits.max_connections && !registry.evict_one() {
            metrics.refused_connections.inc();
            tasks.spawn(refuse(stream));
            continue;
        }
        let (id, conn) = registry.add();
        let (app, registry) = (app.clone(), Arc::clone(&registry));
        tasks.spawn(async move {
            serve_connection(stream, peer, app, Arc::clone(&conn), limits).await;
            registry.remove(id);
        });
    }
    drop(listener);
    registry.close_all();
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            "shutdown timeout: dropping connections whose requests did not finish (none of them was acknowledged)"
        );
        tasks.shutdown().await;
    }
}

/// The answer to a connection past the limit when no connection can make room.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"code":"unavailable","message":"the server is at its connection limit (--max-connections) and every connection is busy; retry shortly"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    conn: Arc<Conn>,
    limits: Limits,
) {
    let io = TokioIo::new(Watched {
        inner: stream,
        conn: Arc::clone(&conn),
    });
    let service = {
        let conn = Arc::clone(&conn);
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let (app, conn) = (app.clone(), Arc::clone(&conn));
            async move {
                Ok::<_, std::convert::Infallible>(handle(app, conn, peer, request, limits).await)
            }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // The watchdog below times heads and idleness; hyper's own timer is not used.
        .header_read_timeout(None)
        .serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut closing = false;
    loop {
        let wake = {
            let s = conn.lock();
            if s.in_flight > 0 {
                // Busy: the body timeout guards the request; look again later.
                Instant::now() + limits.header_timeout.min(limits.idle_timeout)
            } else if let Some(head) = s.head_since {
                head + limits.header_timeout
            } else {
                s.idle_since + limits.idle_timeout
            }
        };
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = conn.close.notified() => {
                if conn.lock().in_flight == 0 {
                    return; // idle or mid-head: nothing of it was answered
                }
                if !closing {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                let s = conn.lock();
                let now = Instant::now();
                if s.in_flight == 0 {
                    match s.head_since {
                        Some(head) if now >= head + limits.header_timeout => return,
                        None if now >= s.idle_since + limits.idle_timeout => return,
                        _ => {}
                    }
                }
            }
        }
    }
}

/// One request: counted as in flight while the router works on it, its body under the body
/// timeout, the peer's address available to handlers as [`ConnectInfo`].
async fn handle(
    app: Router,
    conn: Arc<Conn>,
    peer: SocketAddr,
    request: Request<Incoming>,
    limits: Limits,
) -> Response<Body> {
    struct InFlight(Arc<Conn>);
    impl Drop for InFlight {
        fn drop(&mut self) {
            let mut s = self.0.lock();
            s.in_flight -= 1;
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
            }
        }
    }
    {
        let mut s = conn.lock();
        s.in_flight += 1;
        s.head_since = None;
    }
    let _in_flight = InFlight(conn);
    let timed_out = Arc::new(AtomicBool::new(false));
    let mut request = request.map(|body| {
        Body::new(TimedBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(limits.body_timeout)),
            timed_out: Arc::clone(&timed_out),
        })
    });
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = app.oneshot(request).await.unwrap_or_else(|e| match e {});
    if timed_out.load(Ordering::Relaxed) {
        return body_timeout_response(limits.body_timeout);
    }
    response
}

fn body_timeout_response(timeout: Duration) -> Response<Body> {
    let body = serde_json::json!({
        "code": "request_timeout",
        "message": format!(
            "the request body did not arrive within {} ms of its head (--body-timeout-ms); nothing was logged",
            timeout.as_millis()
        ),
    });
    Response::builder()
        .status(StatusCode::REQUEST_TIMEOUT)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONNECTION, "close")
        .body(Body::from(body.to_string()))
        .expect("a valid response")
}

/// A request body that fails once its deadline passes.
struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timed_out: Arc<AtomicBool>,
}

#[derive(Debug)]
struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimeout {}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(self.deadline.as_mut().poll(cx));
        self.timed_out.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(Box::new(BodyTimeout))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting when the first byte of a request head arrives on an idle connection.
struct Watched {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        if result.is_ok() && buf.filled().len() > before {
            let mut s = self.conn.lock();
            if s.in_flight == 0 && s.head_since.is_none() {
                s.head_since = Some(Instant::now());
            }
        }
        Poll::Ready(result)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
