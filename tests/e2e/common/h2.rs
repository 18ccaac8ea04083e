//! A small HTTP/2 client: h2c with prior knowledge or h2 over TLS (ALPN), one request per
//! connection, every header field sent as given (repeated `cookie` and `x-client-ip` fields
//! stay separate fields on the wire).

use std::time::Duration;

use http::Request;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use super::Response;

/// `GET path` over HTTP/2 to 127.0.0.1:`port`, with `authority` as `:authority`; over TLS
/// (certificate not checked) when `tls`. Header names must be lower case, as HTTP/2 wants.
pub fn get(
    port: u16,
    tls: bool,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let scheme = if tls { "https" } else { "http" };
    let mut req = Request::get(format!("{scheme}://{authority}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(()).expect("request");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let exchange = async move {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        if tls {
            let mut builder = SslConnector::builder(SslMethod::tls_client()).expect("tls");
            builder.set_verify(SslVerifyMode::NONE);
            builder.set_alpn_protos(b"\x02h2").expect("alpn");
            let ssl = builder
                .build()
                .configure()
                .and_then(|c| c.into_ssl("localhost"))
                .expect("ssl");
            let mut stream = tokio_openssl::SslStream::new(ssl, tcp).expect("tls stream");
            std::pin::Pin::new(&mut stream)
                .connect()
                .await
                .expect("TLS handshake");
            let alpn = stream.ssl().selected_alpn_protocol().map(<[u8]>::to_vec);
            assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "nginx chose HTTP/2");
            send(stream, req).await
        } else {
            send(tcp, req).await
        }
    };
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), exchange).await })
        .expect("an answer within 20 s")
}

async fn send<T>(io: T, req: Request<()>) -> Response
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, conn) = h2::client::handshake(io).await.expect("HTTP/2 handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.expect("HTTP/2 ready");
    let (answer, _) = client.send_request(req, true).expect("send request");
    let resp = answer.await.expect("response");
    let status = resp.status().as_u16();
    let head = format!("{:?}", resp.headers());
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("body");
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    drop(client);
    driver.abort();
    Response {
        status,
        head,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}
