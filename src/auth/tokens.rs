//! Access tokens (HS256 JWT with a `kid`, so signing keys can rotate) and opaque refresh tokens
//! (random, stored only as a SHA-256 hash).

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{decode_secret, AuthSettings};
use crate::domain::account::Role;
use crate::domain::ids::{OrgId, SessionId, UserId};

pub const AUDIENCE: &str = "doorstep";
const KEY_FILE: &str = "jwt-signing.key";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: UserId,
    pub sid: SessionId,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgId>,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot use key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// A key's id: the first 8 bytes of its SHA-256, so the id reveals nothing about the key.
fn key_id(secret: &[u8]) -> String {
    let digest = Sha256::digest(secret);
    hex(&digest[..8])
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct JwtKeys {
    kid: String,
    encoding: EncodingKey,
    /// The current key first, then the previous ones still accepted.
    decoding: Vec<(String, DecodingKey)>,
    access_ttl_s: i64,
}

impl JwtKeys {
    /// The configured key, or one generated once and kept in `data_dir` (mode 0600).
    pub fn load(settings: &AuthSettings, data_dir: &Path) -> Result<JwtKeys, KeyError> {
        let current = match &settings.jwt_secret {
            Some(secret) => decode_secret(secret).map_err(KeyError::Invalid)?,
            None => load_or_create_key_file(data_dir)?,
        };
        let mut keys = vec![current];
        for previous in &settings.jwt_previous_secrets {
            keys.push(decode_secret(previous).map_err(KeyError::Invalid)?);
        }
        Ok(Self::from_secrets(&keys, settings.access_ttl_s))
    }

    pub fn from_secrets(secrets: &[Vec<u8>], access_ttl_s: i64) -> JwtKeys {
        let decoding = secrets
            .iter()
            .map(|s| (key_id(s), DecodingKey::from_secret(s)))
            .collect();
        let current = secrets.first().map(Vec::as_slice).unwrap_or_default();
        JwtKeys {
            kid: key_id(current),
            encoding: EncodingKey::from_secret(current),
            decoding,
            access_ttl_s,
        }
    }

    pub fn access_ttl_s(&self) -> i64 {
        self.access_ttl_s
    }

    pub fn issue(
        &self,
        user: UserId,
        session: SessionId,
        role: Role,
        org: Option<OrgId>,
        now_s: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        let claims = AccessClaims {
            sub: user,
            sid: session,
            role,
            org,
            aud: AUDIENCE.into(),
            iat: now_s,
            exp: now_s + self.access_ttl_s,
        };
        jsonwebtoken::encode(&header, &claims, &self.encoding)
    }

    /// Verifies signature, algorithm (HS256 only: `none` and others are refused), audience and
    /// expiry. The reason is for logs; clients only ever see "invalid token".
    pub fn verify(&self, token: &str) -> Result<AccessClaims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        if header.alg != Algorithm::HS256 {
            return Err(format!("algorithm {:?} not accepted", header.alg));
        }
        let kid = header.kid.ok_or("token has no kid")?;
        let key = self
            .decoding
            .iter()
            .find(|(id, _)| *id == kid)
            .map(|(_, key)| key)
            .ok_or("unknown signing key")?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
}

fn load_or_create_key_file(data_dir: &Path) -> Result<Vec<u8>, KeyError> {
    let path = data_dir.join(KEY_FILE);
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            decode_secret(&text).map_err(|m| KeyError::Invalid(format!("{}: {m}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::files::create_private_dir(data_dir).map_err(io)?;
            let mut secret = vec![0u8; 32];
            rand::rng().fill_bytes(&mut secret);
            write_private_file(&path, &URL_SAFE_NO_PAD.encode(&secret)).map_err(io)?;
            Ok(secret)
        }
        Err(e) => Err(io(e)),
    }
}

/// Writes a secret readable by the owner only. `create_new` so two replicas starting together
/// cannot overwrite each other's key; the loser reads the winner's.
pub fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// A new opaque refresh token (256 random bits, base64url).
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored for a refresh token: its SHA-256. The token itself has 256 bits of entropy,
/// so a fast hash suffices.
pub fn hash_refresh_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8]) -> JwtKeys {
        JwtKeys::from_secrets(&[secret.to_vec()], 900)
    }

    #[test]
    fn issued_token_verifies() {
        let k = keys(&[7u8; 32]);
        let user = UserId::new();
        let now = chrono::Utc::now().timestamp();
        let token = k
            .issue(
                user,
                SessionId::new(),
                Role::Canvasser,
                Some(OrgId::new()),
                now,
            )
            .unwrap();
        assert_eq!(k.verify(&token).unwrap().sub, user);
    }

    #[test]
    fn wrong_key_expired_and_none_are_refused() {
        let k = keys(&[7u8; 32]);
        let other = keys(&[8u8; 32]);
        let now = chrono::Utc::now().timestamp();
        let token = other
            .issue(UserId::new(), SessionId::new(), Role::Admin, None, now)
            .unwrap();
        assert!(k.verify(&token).is_err());
        let expired = k
            .issue(
                UserId::new(),
                SessionId::new(),
                Role::Admin,
                None,
                now - 10_000,
            )
            .unwrap();
        assert!(k.verify(&expired).is_err());
        let payload = token.split('.').nth(1).unwrap();
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
        );
        assert!(k.verify(&none).is_err());
    }

    #[test]
    fn previous_key_still_verifies_after_rotation() {
        let old = keys(&[1u8; 32]);
        let rotated = JwtKeys::from_secrets(&[vec![2u8; 32], vec![1u8; 32]], 900);
        let now = chrono::Utc::now().timestamp();
        let token = old
            .issue(UserId::new(), SessionId::new(), Role::Police, None, now)
            .unwrap();
        assert!(rotated.verify(&token).is_ok());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(decode_secret("c2hvcnQ").is_err());
        assert!(decode_secret(&URL_SAFE_NO_PAD.encode([0u8; 32])).is_ok());
    }
}
