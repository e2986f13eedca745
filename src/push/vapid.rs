//! VAPID (RFC 8292): the server's P-256 key, and the `Authorization: vapid t=..., k=...` header,
//! signed once per push-service origin and renewed before it expires (not per message).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use serde::Serialize;

use crate::config::PushSettings;

const KEY_FILE: &str = "vapid-private.key";
/// How long a VAPID token is valid (RFC 8292 allows at most 24 h).
const TOKEN_LIFETIME_S: i64 = 12 * 3600;
/// Renew a cached token when less than this remains.
const RENEW_BEFORE_S: i64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum VapidError {
    #[error("invalid VAPID key: {0}")]
    Invalid(String),
    #[error("cannot use VAPID key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot sign a VAPID token: {0}")]
    Sign(String),
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: i64,
    sub: &'a str,
}

pub struct Vapid {
    encoding: EncodingKey,
    /// Base64url uncompressed public point: the browser's `applicationServerKey` and `k=`.
    public_key: String,
    subject: String,
    /// Signed tokens by origin, with their expiry.
    cache: Mutex<HashMap<String, (String, i64)>>,
}

impl Vapid {
    /// The configured key (`push.vapid_private_key`, or a PEM file in `push.vapid_key_file`), or one
    /// generated on first start and kept in `data_dir`.
    pub fn load(settings: &PushSettings, data_dir: &Path) -> Result<Vapid, VapidError> {
        let secret = if let Some(raw) = &settings.vapid_private_key {
            secret_from_raw(raw)?
        } else if let Some(path) = &settings.vapid_key_file {
            let pem = std::fs::read_to_string(path).map_err(|source| VapidError::Io {
                path: path.display().to_string(),
                source,
            })?;
            p256::SecretKey::from_pkcs8_pem(&pem)
                .or_else(|_| p256::SecretKey::from_sec1_pem(&pem))
                .map_err(|e| VapidError::Invalid(format!("{}: {e}", path.display())))?
        } else {
            load_or_create(data_dir)?
        };
        Self::from_secret(&secret, &settings.subject)
    }

    pub fn from_secret(secret: &p256::SecretKey, subject: &str) -> Result<Vapid, VapidError> {
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| VapidError::Invalid(e.to_string()))?;
        let public = secret.public_key().to_encoded_point(false);
        Ok(Vapid {
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            public_key: URL_SAFE_NO_PAD.encode(public.as_bytes()),
            subject: subject.to_owned(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The `Authorization` header value for a push to `origin` (scheme://host[:port], the
    /// port included when it is not the default: RFC 8292 §2, RFC 6454).
    pub fn authorization(&self, origin: &str, now_s: i64) -> Result<String, VapidError> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let token = match cache.get(origin) {
            Some((token, exp)) if *exp - now_s > RENEW_BEFORE_S => token.clone(),
            _ => {
                let exp = now_s + TOKEN_LIFETIME_S;
                let token = jsonwebtoken::encode(
                    &Header::new(Algorithm::ES256),
                    &Claims {
                        aud: origin,
                        exp,
                        sub: &self.subject,
                    },
                    &self.encoding,
                )
                .map_err(|e| VapidError::Sign(e.to_string()))?;
                cache.insert(origin.to_owned(), (token.clone(), exp));
                token
            }
        };
        Ok(format!("vapid t={token}, k={}", self.public_key))
    }
}

fn secret_from_raw(raw: &str) -> Result<p256::SecretKey, VapidError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(raw.trim().trim_end_matches('='))
        .map_err(|e| VapidError::Invalid(format!("not base64url: {e}")))?;
    p256::SecretKey::from_slice(&bytes)
        .map_err(|_| VapidError::Invalid("not a raw 32-byte P-256 private key".into()))
}

fn load_or_create(data_dir: &Path) -> Result<p256::SecretKey, VapidError> {
    let path = data_dir.join(KEY_FILE);
    let io = |source| VapidError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => secret_from_raw(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::files::create_private_dir(data_dir).map_err(io)?;
            let pair = crate::vapid::generate();
            match crate::auth::tokens::write_private_file(&path, &pair.private_key) {
                Ok(()) => secret_from_raw(&pair.private_key),
                // Another replica sharing the folder wrote it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    secret_from_raw(&std::fs::read_to_string(&path).map_err(io)?)
                }
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}

/// The origin of an endpoint URL as VAPID's `aud` wants it.
pub fn origin_of(endpoint: &url::Url) -> String {
    endpoint.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_cached_per_origin_and_verifies_with_k() {
        let pair = crate::vapid::generate();
        let vapid =
            Vapid::from_secret(&secret_from_raw(&pair.private_key).unwrap(), "mailto:a@b.c")
                .unwrap();
        assert_eq!(vapid.public_key(), pair.public_key);
        let now = chrono::Utc::now().timestamp();
        let a = vapid
            .authorization("https://push.example:8443", now)
            .unwrap();
        let b = vapid
            .authorization("https://push.example:8443", now + 60)
            .unwrap();
        assert_eq!(a, b, "not signed per message");
        let c = vapid.authorization("https://other.example", now).unwrap();
        assert_ne!(a, c);
        let renewed = vapid
            .authorization("https://push.example:8443", now + TOKEN_LIFETIME_S - 60)
            .unwrap();
        assert_ne!(a, renewed, "renewed before expiry");

        let token = a
            .strip_prefix("vapid t=")
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let k = URL_SAFE_NO_PAD.decode(&pair.public_key).unwrap();
        let key = jsonwebtoken::DecodingKey::from_ec_components(
            &URL_SAFE_NO_PAD.encode(&k[1..33]),
            &URL_SAFE_NO_PAD.encode(&k[33..65]),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.set_audience(&["https://push.example:8443"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "mailto:a@b.c");
        assert!(claims["exp"].as_i64().unwrap() - now <= 24 * 3600);
    }

    #[test]
    fn origin_keeps_a_non_default_port() {
        let u = url::Url::parse("http://127.0.0.1:41234/push/x").unwrap();
        assert_eq!(origin_of(&u), "http://127.0.0.1:41234");
        let u = url::Url::parse("https://fcm.googleapis.com:443/fcm/send/x").unwrap();
        assert_eq!(origin_of(&u), "https://fcm.googleapis.com");
    }

    #[test]
    fn generated_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
    }
}
