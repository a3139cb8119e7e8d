//! The accept loop: every connection held to the limits that keep the service reachable by
//! everyone while some clients are slow or hostile.
//!
//! `axum::serve` has no header-read timeout and no connection cap, so connections are served
//! here with hyper's own HTTP/1 connection, whose header-read timeout (with tokio's timer)
//! closes a connection that has not sent a whole request head in time: a slowloris client,
//! and an idle keep-alive connection waiting for its next request, alike.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tower_service::Service as _;

use super::admission::ClientAddr;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// How long a connection past the cap has to send its request's head: long enough for a
/// client that sends it at once (a health check), too short for an idle flood to hold it.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// The limits every connection is held to.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// Connections open at once with the full header timeout. As many again are let in with a
    /// header timeout of a second, so that a flood of idle connections cannot keep out a
    /// client that sends its request at once; past both, a new connection is closed at once.
    pub(super) max_connections: usize,
    /// Time a client has to send a request's head, from when the server is ready for it
    /// (so also the longest an idle keep-alive connection stays open).
    pub(super) header_timeout: Duration,
    /// Time a client may take no bytes of a response while the server has some to send: a
    /// reader too slow for too long is cut, and what its request held (an export's permit,
    /// its query) is freed.
    pub(super) write_timeout: Duration,
}

/// Serves `app` on `listener` until `stop` turns true, then lets the open connections finish
/// their requests for `grace`, and cuts what is still running.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut hurried = http.clone();
    hurried.header_read_timeout(limits.header_timeout.min(OVERFLOW_HEADER_TIMEOUT));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let overflow = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors, say: wait a moment rather than spin.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (slot, builder) = match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => (slot, &http),
                    // Over the cap: a second to send the request, then closed.
                    Err(_) => match Arc::clone(&overflow).try_acquire_owned() {
                        Ok(slot) => (slot, &hurried),
                        // Past both: closed at once, so the client knows and no descriptor
                        // is held for it.
                        Err(_) => {
                            drop(socket);
                            continue;
                        }
                    },
                };
                let _ = socket.set_nodelay(true);
                // Every request carries its client's address, for the per-client limits.
                let router = app.clone();
                let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ClientAddr(peer.ip()));
                    router.clone().call(request)
                });
                let socket = WriteDeadline::new(socket, limits.write_timeout);
                let connection = graceful.watch(builder.serve_connection(TokioIo::new(socket), service));
                connections.spawn(async move {
                    let _ = connection.await;
                    drop(slot);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over: cutting the exports still running");
        }
    }
    // Dropping the set aborts every connection still open.
    connections.abort_all();
}

/// A connection whose writes fail once the client has taken no bytes for `timeout` while the
/// server had some to send. hyper's HTTP/1 server has no write timeout of its own; a read
/// timeout is not wanted here (a client downloading a long export sends nothing meanwhile, and
/// the header timeout covers idle connections).
struct WriteDeadline<T> {
    io: T,
    timeout: Duration,
    // Running while a write waits for the client to take bytes.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteDeadline<T> {
    fn new(io: T, timeout: Duration) -> Self {
        WriteDeadline {
            io,
            timeout,
            waiting: None,
        }
    }

    /// What a write that returned `polled` becomes: ready clears the clock, pending starts it
    /// (or, once it has run out, fails).
    fn deadline<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        if polled.is_ready() {
            self.waiting = None;
            return polled;
        }
        let timeout = self.timeout;
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match waiting.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client took no bytes for {timeout:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.deadline(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.deadline(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Connections the kernel may hold for the accept loop (capped by `net.core.somaxconn`): a
/// flood of connects that outruns the loop for a moment is queued, not dropped, so a client
/// arriving amid it (a health check) is not left to retry its handshake a second later.
const BACKLOG: u32 = 4096;

/// A listener on `addr` with a deep accept queue.
pub(crate) fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}
