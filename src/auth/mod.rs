//! Credentials: password and PIN hashing, access tokens, refresh tokens.

pub mod password;
pub mod tokens;
