//! `GET /metrics` over hyper's HTTP/1 server (anything else is 404).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::Exporter;

/// Serves until the process stops; each connection on its own task.
pub async fn serve(exporter: Arc<Exporter>, address: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(address).await?;
    tracing::info!("exporter serving http://{}/metrics", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let exporter = exporter.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(exporter.clone(), request));
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!("exporter connection: {e}");
            }
        });
    }
}

async fn answer(exporter: Arc<Exporter>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = if request.uri().path() == "/metrics" {
        Response::builder()
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(Full::new(Bytes::from(exporter.scrape().await)))
    } else {
        Response::builder().status(StatusCode::NOT_FOUND).body(Full::new(Bytes::from_static(b"try /metrics\n")))
    };
    Ok(response.expect("static response parts"))
}
