//! `POST /api/token`: dev mode's token minter. Anyone may ask for a token
//! for any room and identity, which is why it exists only in dev mode
//! (404 otherwise): production tokens come from the application's backend
//! (or `sfu-server token`), signed with the API secret.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::auth::{Grants, TokenRequest};
use crate::protocol::validate_room;
use crate::AppState;

/// How long a dev token is valid.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// The route.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/token", post(mint))
}

/// What a client asks for.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MintRequest {
    room: String,
    identity: String,
    #[serde(default)]
    name: String,
    /// Defaults to everything but `roomAdmin`.
    grants: Option<Grants>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MintResponse {
    token: String,
    /// RFC 3339, UTC.
    expires_at: String,
}

fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"error": code, "message": message.into()});
    (status, Json(body)).into_response()
}

async fn mint(
    State(state): State<Arc<AppState>>,
    body: Result<Json<MintRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if !state.security.auth.dev {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_dev_mode",
            "this server is not in dev mode and does not mint access tokens: \
             get one from the application that sent you here",
        );
    }
    let Json(request) = match body {
        Ok(body) => body,
        Err(err) => return refuse(StatusCode::BAD_REQUEST, "bad_request", err.body_text()),
    };
    if let Err(message) = validate_room(&request.room) {
        return refuse(StatusCode::BAD_REQUEST, "bad_room", message);
    }
    let now = SystemTime::now();
    let minted = state.security.auth.keys.mint_at(
        &TokenRequest {
            room: request.room,
            identity: request.identity,
            name: request.name,
            grants: request.grants.unwrap_or_else(Grants::dev_default),
            ttl: DEV_TOKEN_TTL,
        },
        now,
    );
    match minted {
        Ok(token) => Json(MintResponse {
            token,
            expires_at: humantime::format_rfc3339_seconds(now + DEV_TOKEN_TTL).to_string(),
        })
        .into_response(),
        Err(err) => refuse(StatusCode::BAD_REQUEST, "bad_request", err.to_string()),
    }
}
