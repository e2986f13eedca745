//! Time-based one-time passwords (RFC 6238) and recovery codes.
//!
//! The settings are the ones every authenticator app understands: HMAC-SHA1, 6 digits, 30-second
//! steps, and one step of clock skew either way. Secrets are 160 random bits (RFC 4226 §4),
//! shown to the user in base32. Nothing here logs a secret or a code.

use rand::{Rng, RngCore};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::error::AppError;

/// The `issuer` shown in authenticator apps.
pub const ISSUER: &str = "Doorstep";
/// Seconds per step.
pub const STEP_S: u64 = 30;
/// Recovery codes generated at confirmation.
pub const RECOVERY_CODE_COUNT: usize = 10;

/// Lower-case letters and digits without the look-alikes 0/o, 1/l/i.
const RECOVERY_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const RECOVERY_GROUPS: usize = 3;
const RECOVERY_GROUP_LEN: usize = 4;

/// A new random secret, base32 (RFC 4648, no padding) as stored and shown.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new_stack(bytes).to_base32()
}

fn totp(secret_b32: &str, account: &str) -> Result<Totp, AppError> {
    let secret = Secret::try_from_base32(secret_b32)
        .map_err(|_| AppError::internal("stored TOTP secret is not base32"))?;
    let builder = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(STEP_S)
        .with_skew(1)
        .with_secret(secret);
    let builder = if account.is_empty() {
        builder
    } else {
        builder
            .with_account_name(account.replace(':', ""))
            .with_issuer(Some(ISSUER))
    };
    builder
        .build()
        .map_err(|e| AppError::internal(format!("building TOTP: {e}")))
}

/// The `otpauth://totp/...` URL an authenticator app scans (as a QR code) to add the account.
pub fn otpauth_url(secret_b32: &str, account: &str) -> Result<String, AppError> {
    totp(secret_b32, account)?
        .to_url()
        .map_err(|e| AppError::internal(format!("building otpauth URL: {e}")))
}

/// The time step `code` belongs to, if it is valid at `now_s` (± one step), else `None`.
/// Spaces inside the code are ignored ("123 456").
pub fn check(secret_b32: &str, code: &str, now_s: i64) -> Result<Option<i64>, AppError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let now_s = u64::try_from(now_s).unwrap_or(0);
    Ok(totp(secret_b32, "")?
        .check(&code, now_s)
        .and_then(|step| i64::try_from(step).ok()))
}

/// Whether `code` looks like a TOTP code (six digits, spaces ignored) rather than a recovery code.
pub fn looks_like_totp(code: &str) -> bool {
    let digits: Vec<u8> = code.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits.len() == 6 && digits.iter().all(u8::is_ascii_digit)
}

/// Fresh recovery codes as shown to the user, e.g. `k7mq-3xtp-9hce`.
pub fn new_recovery_codes() -> Vec<String> {
    let mut rng = rand::rng();
    (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            (0..RECOVERY_GROUPS)
                .map(|_| {
                    (0..RECOVERY_GROUP_LEN)
                        .map(|_| {
                            RECOVERY_ALPHABET[rng.random_range(0..RECOVERY_ALPHABET.len())] as char
                        })
                        .collect::<String>()
                })
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// The form a recovery code is hashed in: lower case, dashes and spaces dropped. `None` when it
/// cannot be a recovery code at all (so no hash needs to be checked).
pub fn canonical_recovery_code(code: &str) -> Option<String> {
    let canonical: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (canonical.len() == RECOVERY_GROUPS * RECOVERY_GROUP_LEN
        && canonical.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
    .then_some(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vector() {
        // RFC 6238 appendix B: secret "12345678901234567890", T = 59 → 94287082 (8 digits);
        // the 6-digit code is its last six digits.
        let secret = Secret::from(b"12345678901234567890".to_vec()).to_base32();
        assert_eq!(check(&secret, "287082", 59).unwrap(), Some(1));
        assert_eq!(check(&secret, "287 082", 59).unwrap(), Some(1));
        assert_eq!(check(&secret, "287083", 59).unwrap(), None);
        assert_eq!(check(&secret, "28708", 59).unwrap(), None);
        assert_eq!(check(&secret, "+87082", 59).unwrap(), None);
    }

    #[test]
    fn skew_is_one_step_either_way() {
        let secret = new_secret();
        let totp = totp(&secret, "").unwrap();
        let now = 1_000_000_000i64;
        let at = |t: i64| totp.generate(t as u64).to_string();
        assert_eq!(check(&secret, &at(now), now).unwrap(), Some(now / 30));
        assert_eq!(
            check(&secret, &at(now - 30), now).unwrap(),
            Some(now / 30 - 1)
        );
        assert_eq!(
            check(&secret, &at(now + 30), now).unwrap(),
            Some(now / 30 + 1)
        );
        let far = at(now - 90);
        if far != at(now) && far != at(now - 30) && far != at(now + 30) {
            assert_eq!(check(&secret, &far, now).unwrap(), None);
        }
    }

    #[test]
    fn secrets_and_urls() {
        let secret = new_secret();
        assert_eq!(secret.len(), 32, "160 bits in unpadded base32");
        assert_ne!(secret, new_secret());
        let url = otpauth_url(&secret, "olive@example.org").unwrap();
        assert!(
            url.starts_with("otpauth://totp/Doorstep:olive%40example.org?"),
            "{url}"
        );
        assert!(url.contains(&format!("secret={secret}")), "{url}");
        assert!(url.contains("issuer=Doorstep"), "{url}");
    }

    #[test]
    fn recovery_codes() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 14, "{code}");
            assert_eq!(code.matches('-').count(), 2, "{code}");
            let canonical = canonical_recovery_code(code).unwrap();
            assert_eq!(canonical, code.replace('-', ""));
            assert_eq!(
                canonical_recovery_code(&format!(" {} ", code.to_uppercase())),
                Some(canonical)
            );
            assert!(!looks_like_totp(code));
        }
        assert!(canonical_recovery_code("0000-1111-iiii").is_none());
        assert!(canonical_recovery_code("abcd-efgh").is_none());
        assert!(looks_like_totp("123456") && looks_like_totp("123 456"));
    }
}
