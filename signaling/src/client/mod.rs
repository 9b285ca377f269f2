//! A client of the server's own WebSocket signaling (`/ws`, see
//! docs/signaling.md): join (following a cluster's redirects), offer and
//! answer, trickle ICE, chat, leave. `sfu-loadtest`'s synthetic peers and
//! the cluster's node-to-node bridge (`cluster/bridge`) speak through it.

pub mod peer;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};
use webrtc::peer_connection::RTCIceCandidateInit;

/// How long to wait for the socket to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A message from the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ServerMsg {
    /// The join succeeded.
    Joined {
        /// Our id.
        peer_id: String,
        /// Who is already there.
        #[serde(default)]
        participants: Vec<Participant>,
    },
    /// Someone entered the room.
    ParticipantJoined {
        /// Who.
        peer_id: String,
        /// Display name.
        name: String,
    },
    /// Someone left.
    ParticipantLeft {
        /// Who.
        peer_id: String,
    },
    /// A participant stopped publishing a track.
    TrackUnpublished {
        /// Who.
        peer_id: String,
        /// The track.
        track_id: String,
    },
    /// To a link's ghost: how much of one of its videos the node wants.
    VideoDemand {
        /// The ghost's own track id.
        track_id: String,
        /// `q`, `h` or `f`; `None`: none.
        max_layer: Option<String>,
    },
    /// A chat message of another participant.
    Chat {
        /// Who.
        from: String,
        /// Their name.
        #[serde(default)]
        name: String,
        /// What.
        text: String,
    },
    /// In a cluster: join on another node (see [`Signaling::join`]).
    Redirect {
        /// The node's signaling URL.
        url: String,
        /// For the join there.
        routing_token: String,
    },
    /// The answer to our offer.
    Answer {
        /// SDP.
        sdp: String,
    },
    /// A server-initiated renegotiation.
    Offer {
        /// SDP.
        sdp: String,
    },
    /// A trickled candidate (`None` ends them).
    Candidate {
        /// The candidate.
        candidate: Option<RTCIceCandidateInit>,
    },
    /// A request failed.
    Error {
        /// Machine-readable code.
        code: String,
        /// For people.
        message: String,
    },
    /// Our `leave` was carried out.
    Left,
    /// Anything else (`participantJoined`, `trackPublished`, ...):
    /// the load tester does not act on it.
    #[serde(other)]
    Unknown,
}

/// A participant as `joined` lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// Its id.
    pub peer_id: String,
    /// Display name.
    pub name: String,
}

/// How many redirects one join follows.
const MAX_REDIRECTS: usize = 3;

/// Why signaling failed.
#[derive(Debug, thiserror::Error)]
pub enum SignalingError {
    /// The socket could not be opened.
    #[error("cannot open {url}: {reason}")]
    Connect {
        /// Where.
        url: String,
        /// Why.
        reason: String,
    },
    /// The socket failed or closed.
    #[error("signaling socket {0}")]
    Closed(String),
    /// The server sent something we cannot read.
    #[error("unreadable server message: {0}")]
    BadMessage(String),
    /// The server refused the join.
    #[error("join refused: {0}")]
    Refused(String),
}

/// One participant's signaling socket.
pub struct Signaling {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Where it is connected now (a redirect moves it).
    url: String,
}

impl Signaling {
    /// Opens `ws_url` (e.g. `ws://127.0.0.1:8080/ws`).
    pub async fn connect(ws_url: &str) -> Result<Self, SignalingError> {
        let connect_err = |reason: String| SignalingError::Connect {
            url: ws_url.to_owned(),
            reason,
        };
        let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, connect_async(ws_url))
            .await
            .map_err(|_| connect_err("timed out".to_owned()))?
            .map_err(|e| connect_err(e.to_string()))?;
        Ok(Self {
            ws,
            url: ws_url.to_owned(),
        })
    }

    /// The URL the socket is connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn send(&mut self, value: Value) -> Result<(), SignalingError> {
        self.ws
            .send(Message::text(value.to_string()))
            .await
            .map_err(|e| SignalingError::Closed(format!("send failed: {e}")))
    }

    /// Sends `join` with an access token.
    pub async fn join(
        &mut self,
        room: &str,
        name: &str,
        token: &str,
    ) -> Result<(), SignalingError> {
        self.send(json!({"type": "join", "room": room, "name": name, "token": token}))
            .await
    }

    /// Sends `join` (with `extra` fields, such as a relay token) and waits
    /// for `joined`, following a cluster's `redirect`s to other nodes.
    /// Returns the `joined` message; an `error` reply is an error.
    pub async fn join_following(
        &mut self,
        room: &str,
        name: &str,
        token: &str,
        extra: Value,
    ) -> Result<ServerMsg, SignalingError> {
        let mut routing: Option<String> = None;
        for _ in 0..=MAX_REDIRECTS {
            let mut msg = json!({"type": "join", "room": room, "name": name, "token": token});
            if let (Some(fields), Some(obj)) = (extra.as_object(), msg.as_object_mut()) {
                obj.extend(fields.clone());
            }
            if let Some(routing) = routing.take() {
                msg["routingToken"] = routing.into();
            }
            self.send(msg).await?;
            loop {
                match self.recv().await? {
                    joined @ ServerMsg::Joined { .. } => return Ok(joined),
                    ServerMsg::Redirect { url, routing_token } => {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
                        *self = Self::connect(&url).await?;
                        routing = Some(routing_token);
                        break;
                    }
                    ServerMsg::Error { code, message } => {
                        return Err(SignalingError::Refused(format!("{code}: {message}")));
                    }
                    _ => continue,
                }
            }
        }
        Err(SignalingError::Refused(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// Sends `videoPreference` for one received track: the highest layer
    /// wanted (`q`, `h` or `f`), or `None` for no video.
    pub async fn video_preference(
        &mut self,
        track_id: &str,
        max_layer: Option<&str>,
    ) -> Result<(), SignalingError> {
        // A size large enough not to cap the layer itself.
        let (width, height) = if max_layer.is_some() {
            (4096, 4096)
        } else {
            (0, 0)
        };
        let mut msg = json!({"type": "videoPreference", "trackId": track_id,
                             "width": width, "height": height});
        if let Some(layer) = max_layer {
            msg["maxLayer"] = layer.into();
        }
        self.send(msg).await
    }

    /// Sends a chat message.
    pub async fn chat(&mut self, text: &str) -> Result<(), SignalingError> {
        self.send(json!({"type": "chat", "text": text})).await
    }

    /// Sends our offer.
    pub async fn offer(&mut self, sdp: &str) -> Result<(), SignalingError> {
        self.send(json!({"type": "offer", "sdp": sdp})).await
    }

    /// Sends our answer to a server offer.
    pub async fn answer(&mut self, sdp: &str) -> Result<(), SignalingError> {
        self.send(json!({"type": "answer", "sdp": sdp})).await
    }

    /// Sends one local candidate, or the end of candidates.
    pub async fn candidate(
        &mut self,
        candidate: Option<&RTCIceCandidateInit>,
    ) -> Result<(), SignalingError> {
        self.send(json!({"type": "candidate", "candidate": candidate}))
            .await
    }

    /// Sends `leave` and waits, at most `wait`, for the server's `left`:
    /// closing the socket under a `leave` the server has not read yet (a
    /// busy server) would reset the connection, lose the `leave`, and leave
    /// the session parked for a resume.
    pub async fn leave(&mut self, wait: Duration) -> Result<(), SignalingError> {
        self.send(json!({"type": "leave"})).await?;
        let left = async { while !matches!(self.recv().await, Ok(ServerMsg::Left) | Err(_)) {} };
        let _ = tokio::time::timeout(wait, left).await;
        Ok(())
    }

    /// Closes the socket politely (errors ignored: we are done with it).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }

    /// The next server message. Cancel-safe: nothing is lost if the future
    /// is dropped before it completes.
    pub async fn recv(&mut self) -> Result<ServerMsg, SignalingError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| SignalingError::BadMessage(format!("{e}: {text}")));
                }
                Some(Ok(Message::Close(frame))) => {
                    let why = frame
                        .map(|f| format!("closed by server ({} {})", f.code, f.reason))
                        .unwrap_or_else(|| "closed by server".to_owned());
                    return Err(SignalingError::Closed(why));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(SignalingError::Closed(e.to_string())),
                None => return Err(SignalingError::Closed("ended".to_owned())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_parse() {
        let joined: ServerMsg = serde_json::from_str(
            r#"{"type":"joined","room":"r","peerId":"p7","participants":[],"iceServers":[]}"#,
        )
        .expect("joined");
        assert!(matches!(joined, ServerMsg::Joined { peer_id, .. } if peer_id == "p7"));
        let cand: ServerMsg = serde_json::from_str(
            r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
        )
        .expect("candidate");
        assert!(
            matches!(cand, ServerMsg::Candidate { candidate: Some(c) } if c.sdp_mid.as_deref() == Some("0"))
        );
        let end: ServerMsg =
            serde_json::from_str(r#"{"type":"candidate","candidate":null}"#).expect("end");
        assert!(matches!(end, ServerMsg::Candidate { candidate: None }));
        let err: ServerMsg =
            serde_json::from_str(r#"{"type":"error","code":"bad_room","message":"no"}"#)
                .expect("error");
        assert!(matches!(err, ServerMsg::Error { code, .. } if code == "bad_room"));
        let other: ServerMsg =
            serde_json::from_str(r#"{"type":"somethingNew","x":1}"#).expect("unknown");
        assert!(matches!(other, ServerMsg::Unknown));
        let left: ServerMsg = serde_json::from_str(r#"{"type":"left"}"#).expect("left");
        assert!(matches!(left, ServerMsg::Left));
    }
}
