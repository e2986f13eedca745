//! Credentials: password and PIN hashing, access tokens, refresh tokens, TOTP.

pub mod password;
pub mod session_cache;
pub mod tokens;
pub mod totp;
