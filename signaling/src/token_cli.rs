//! `sfu-server token`: mints an access token with the configured API key
//! and secret and prints it, for scripts and for trying a production
//! server out.

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::auth::{Grants, Keys, TokenRequest};
use crate::Config;

/// Tasks other than serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print an access token signed with --api-key/--api-secret
    /// (SFU_API_KEY/SFU_API_SECRET) and exit.
    Token(TokenArgs),
}

/// `sfu-server token` flags.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The room the token admits to.
    #[arg(long)]
    pub room: String,

    /// The participant's identity (also its call ID for 1:1 calls, when it
    /// is one).
    #[arg(long)]
    pub identity: String,

    /// Display name.
    #[arg(long, default_value = "")]
    pub name: String,

    /// How long the token is valid: `30m`, `1h`, `7d`, ...
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,

    /// May publish audio and video. If neither --publish nor --subscribe
    /// is given, both are granted, and so is --publish-data.
    #[arg(long)]
    pub publish: bool,

    /// May receive the others' audio and video (see --publish).
    #[arg(long)]
    pub subscribe: bool,

    /// May send chat messages.
    #[arg(long)]
    pub publish_data: bool,

    /// May use the admin API for this room (list, kick, close).
    #[arg(long)]
    pub room_admin: bool,

    /// May be the first to join the room, which creates it.
    #[arg(long)]
    pub room_create: bool,
}

impl TokenArgs {
    /// The grants the flags ask for.
    pub fn grants(&self) -> Grants {
        let neither = !self.publish && !self.subscribe;
        Grants {
            can_publish: self.publish || neither,
            can_subscribe: self.subscribe || neither,
            can_publish_data: self.publish_data || neither,
            room_admin: self.room_admin,
            room_create: self.room_create,
        }
    }
}

/// Why no token was printed.
#[derive(Debug, thiserror::Error)]
pub enum TokenCliError {
    /// No key or secret.
    #[error(
        "minting a token needs --api-key and --api-secret (or SFU_API_KEY and SFU_API_SECRET)"
    )]
    NoKeys,
    /// Bad room, identity or TTL.
    #[error(transparent)]
    Mint(#[from] crate::auth::MintError),
}

/// Mints the token `args` describes with `config`'s key and secret.
pub fn mint(config: &Config, args: &TokenArgs) -> Result<String, TokenCliError> {
    let (Some(key), Some(secret)) = (&config.api_key, &config.api_secret) else {
        return Err(TokenCliError::NoKeys);
    };
    let keys = Keys::new(key.as_str(), secret.as_bytes().to_vec());
    Ok(keys.mint(&TokenRequest {
        room: args.room.clone(),
        identity: args.identity.clone(),
        name: args.name.clone(),
        grants: args.grants(),
        ttl: args.ttl,
    })?)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn parses_and_mints() {
        let config = Config::parse_from([
            "sfu-server",
            "--api-key",
            "k",
            "--api-secret",
            "s",
            "token",
            "--room",
            "r",
            "--identity",
            "i",
            "--ttl",
            "90m",
            "--subscribe",
        ]);
        let Some(Command::Token(args)) = &config.command else {
            panic!("token subcommand not parsed");
        };
        assert_eq!(args.ttl, Duration::from_secs(5400));
        let g = args.grants();
        assert!(g.can_subscribe && !g.can_publish && !g.can_publish_data);
        let token = mint(&config, args).expect("mints");
        let claims = Keys::new("k", b"s".to_vec())
            .verify(&token)
            .expect("verifies");
        assert_eq!((claims.room.as_str(), claims.sub.as_str()), ("r", "i"));
    }
}
