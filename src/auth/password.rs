//! Argon2id hashing for passwords, PINs and recovery codes.

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::error::AppError;

pub fn hash(secret: &str) -> Result<String, AppError> {
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(format!("password hashing failed: {e}")))
}

/// False for a wrong secret and for a malformed stored hash alike.
pub fn verify(secret: &str, stored_hash: &str) -> bool {
    Argon2::default()
        .verify_password(secret.as_bytes(), stored_hash)
        .is_ok()
}

/// Verifies against a fixed hash so that a login for an unknown email costs the same time as
/// one with a wrong password: the two must be indistinguishable.
pub fn verify_against_dummy(secret: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(dummy) = DUMMY.get_or_init(|| hash("doorstep-dummy-password").ok()) {
        let _ = verify(secret, dummy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
    }
}
