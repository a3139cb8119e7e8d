use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use vortex_stream::io::Input;
use vortex_stream::sources::{JsonlSource, LinesSource};
use vortex_stream::ErrorKind;

use crate::support::items;

/// An HTTP server on 127.0.0.1: `/logs.jsonl` (1000 lines, sent in pieces), `/missing` (404),
/// `/cut` (promises more body than it sends, then hangs up).
async fn server(tasks: &mut JoinSet<()>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tasks.spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0u8; 4096];
            let n = socket.read(&mut request).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&request[..n]).into_owned();
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let body: String = (0..1000)
                .map(|i| format!("{{\"level\":\"info\",\"latency_ms\":{i}}}\n"))
                .collect();
            let head = match path.as_str() {
                "/logs.jsonl" => {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                }
                "/cut" => format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                    body.len() * 2
                ),
                _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
            };
            let _ = socket.write_all(head.as_bytes()).await;
            if path != "/missing" {
                for piece in body.as_bytes().chunks(1000) {
                    let _ = socket.write_all(piece).await;
                    tokio::task::yield_now().await;
                }
            }
            let _ = socket.shutdown().await;
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_body_streams_into_a_source() {
    let mut tasks = JoinSet::new();
    let base = server(&mut tasks).await;
    let n = JsonlSource::new(Input::url(format!("{base}/logs.jsonl")))
        .values()
        .count()
        .await
        .unwrap();
    assert_eq!(n, 1000);
}

#[tokio::test]
async fn an_error_status_names_the_url_without_its_password() {
    let mut tasks = JoinSet::new();
    let base = server(&mut tasks).await;
    let url = base.replace("http://", "http://user:pw@") + "/missing";
    let got = items(LinesSource::new(Input::url(url)).lines()).await;
    let err = got[0].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Http);
    assert!(err.to_string().contains("404"), "{err}");
    assert!(err.to_string().contains("user:***@"), "{err}");
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_not_a_clean_end() {
    let mut tasks = JoinSet::new();
    let base = server(&mut tasks).await;
    let got = items(LinesSource::new(Input::url(format!("{base}/cut"))).lines()).await;
    assert!(got.len() > 900, "the lines that came are yielded");
    assert!(got.last().unwrap().is_err(), "the missing rest is reported");
}
