//! Discovery of the server's public address with one STUN Binding request
//! (RFC 5389) at start-up, for a server behind 1:1 NAT that was not told
//! its public IP. Used only when an operator names a STUN server.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rtc::stun::message::TransactionId;
use rtc::stun::message::{Getter, Message, BINDING_REQUEST, BINDING_SUCCESS};
use rtc::stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;

/// Requests sent before giving up (the first waits `timeout / ATTEMPTS`).
const ATTEMPTS: u32 = 3;

/// Asks `server` (host:port) which address packets from `bind_ip` come
/// from, and returns its IP. Fails after `timeout` without an answer.
pub async fn discover_public_ip(
    bind_ip: IpAddr,
    server: &str,
    timeout: Duration,
) -> io::Result<IpAddr> {
    let target = tokio::net::lookup_host(server)
        .await?
        .find(|a| a.is_ipv4() == bind_ip.is_ipv4())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("STUN server {server} has no address of the bind IP's family"),
            )
        })?;
    let socket = UdpSocket::bind(SocketAddr::new(bind_ip, 0)).await?;
    let mut request = Message::new();
    request
        .build(&[Box::new(BINDING_REQUEST), Box::new(TransactionId::new())])
        .map_err(io::Error::other)?;
    let mut buf = [0u8; 1500];
    for _ in 0..ATTEMPTS {
        socket.send_to(&request.raw, target).await?;
        let wait = tokio::time::timeout(timeout / ATTEMPTS, async {
            loop {
                let (n, from) = socket.recv_from(&mut buf).await?;
                if from != target {
                    continue;
                }
                if let Some(ip) = mapped_ip(&buf[..n], &request) {
                    return Ok::<IpAddr, io::Error>(ip);
                }
            }
        })
        .await;
        if let Ok(result) = wait {
            return result;
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no STUN answer from {server}"),
    ))
}

/// The XOR-MAPPED-ADDRESS of a Binding success answering `request`.
fn mapped_ip(datagram: &[u8], request: &Message) -> Option<IpAddr> {
    let mut answer = Message::new();
    answer.unmarshal_binary(datagram).ok()?;
    if answer.typ != BINDING_SUCCESS || answer.transaction_id != request.transaction_id {
        return None;
    }
    let mut mapped = XorMappedAddress::default();
    mapped.get_from(&answer).ok()?;
    Some(mapped.ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::message::Setter;

    fn answer(request: &[u8]) -> Vec<u8> {
        let mut parsed = Message::new();
        parsed.unmarshal_binary(request).unwrap();
        let mut answer = Message::new();
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(BINDING_SUCCESS),
            Box::new(parsed.transaction_id),
            Box::new(XorMappedAddress {
                ip: "203.0.113.9".parse().unwrap(),
                port: 4242,
            }),
        ];
        answer.build(&setters).unwrap();
        answer.raw
    }

    /// A STUN server that maps every request to 203.0.113.9.
    async fn fake_server() -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            let raw = answer(&buf[..n]);
            socket.send_to(&raw, from).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn learns_the_mapped_address() {
        let server = fake_server().await;
        let ip = discover_public_ip(
            "127.0.0.1".parse().unwrap(),
            &server.to_string(),
            Duration::from_secs(3),
        )
        .await
        .unwrap();
        assert_eq!(ip, "203.0.113.9".parse::<IpAddr>().unwrap());
    }

    #[tokio::test]
    async fn silence_times_out() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let err = discover_public_ip(
            "127.0.0.1".parse().unwrap(),
            &silent.local_addr().unwrap().to_string(),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
