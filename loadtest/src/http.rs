//! A minimal HTTP/1.1 client for loopback control endpoints (`/healthz`,
//! `/metrics`, Janus's HTTP API): one request per connection, the body of a
//! 200 response back.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Ordinary requests give up after this long.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `GET path` from `authority` (`host:port`).
pub async fn get(authority: &str, path: &str) -> Result<String, String> {
    request("GET", authority, path, None, TIMEOUT).await
}

/// `POST path` with a JSON `body`.
pub async fn post_json(authority: &str, path: &str, body: &str) -> Result<String, String> {
    request("POST", authority, path, Some(body), TIMEOUT).await
}

/// One request; the body of a 200 response, or why not.
pub async fn request(
    method: &str,
    authority: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<String, String> {
    let what = format!("{method} http://{authority}{path}");
    let exchange = async {
        let mut stream = TcpStream::connect(authority)
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
        if let Some(body) = body {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        request.push_str(body.unwrap_or_default());
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("cannot send to {authority}: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("cannot read from {authority}: {e}"))?;
        parse_response(&raw).map_err(|e| format!("{what}: {e}"))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{what} timed out"))?
}

fn parse_response(raw: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("not an HTTP response")?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("status `{status}`"));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok(body.to_owned());
    }
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or("truncated chunk")?;
        let size = usize::from_str_radix(size.trim(), 16).map_err(|_| "bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(after.get(..size).ok_or("truncated chunk")?);
        rest = after.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(parse_response(plain), Ok("hello".into()));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Ok("hello world".into()));
        assert!(parse_response(b"HTTP/1.1 503 Busy\r\n\r\nx").is_err());
        assert!(parse_response(b"garbage").is_err());
    }

    #[tokio::test]
    async fn round_trip_over_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let authority = listener.local_addr().expect("addr").to_string();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 1024];
            let n = s.read(&mut buf).await.expect("read");
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .expect("write");
            request
        });
        let body = post_json(&authority, "/janus", "{}").await.expect("200");
        assert_eq!(body, "ok");
        let request = server.await.expect("server");
        assert!(request.starts_with("POST /janus HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("Content-Length: 2\r\n") && request.ends_with("{}"));
    }
}
