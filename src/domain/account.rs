//! Accounts: roles, and the parsing of emails, passwords and names at the boundary.

use serde::{Deserialize, Serialize};

use super::field_error::FieldError;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[serde(rename_all = "lowercase")]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Role {
    Admin,
    Organiser,
    Canvasser,
    Police,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Organiser => "organiser",
            Role::Canvasser => "canvasser",
            Role::Police => "police",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "organiser" => Some(Role::Organiser),
            "canvasser" => Some(Role::Canvasser),
            "police" => Some(Role::Police),
            _ => None,
        }
    }

    /// Organisers and canvassers belong to exactly one organisation; admins and police to none.
    pub fn belongs_to_org(&self) -> bool {
        matches!(self, Role::Organiser | Role::Canvasser)
    }
}

/// A normalised (trimmed, lower-case) email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !email.chars().any(|c| c.is_whitespace() || c.is_control())
                    && domain.matches('@').count() == 0
            });
        if valid {
            Ok(Self(email))
        } else {
            Err(FieldError::new(field, "must be an email address"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: long enough to resist guessing, short enough that hashing cannot be abused.
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN_CHARS: usize = 10;
    pub const MAX_BYTES: usize = 256;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        if raw.chars().count() < Self::MIN_CHARS {
            return Err(FieldError::new(
                field,
                format!("must be at least {} characters", Self::MIN_CHARS),
            ));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(FieldError::new(
                field,
                format!("must be at most {} bytes", Self::MAX_BYTES),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

/// A display name shown to organisers and police: 1–100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > 100 {
            return Err(FieldError::new(field, "must be 1 to 100 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalised() {
        assert_eq!(
            Email::parse("email", " Jo@Example.ORG ").unwrap().as_str(),
            "jo@example.org"
        );
    }

    #[test]
    fn bad_emails_are_refused() {
        for bad in [
            "",
            "jo",
            "@x.org",
            "jo@",
            "jo@.org",
            "jo@x.",
            "j o@x.org",
            "a@b@c",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_bounds() {
        assert!(NewPassword::parse("password", "short").is_err());
        assert!(NewPassword::parse("password", &"x".repeat(257)).is_err());
        assert!(NewPassword::parse("password", "long enough pw").is_ok());
    }

    #[test]
    fn display_name_bounds() {
        assert!(DisplayName::parse("display_name", "  ").is_err());
        assert!(DisplayName::parse("display_name", "a\u{7}").is_err());
        assert_eq!(
            DisplayName::parse("display_name", " Jo ").unwrap().as_str(),
            "Jo"
        );
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::Admin, Role::Organiser, Role::Canvasser, Role::Police] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}

/// A phone number in E.164 form (`+447700900123`): `+`, a non-zero digit, 6 to 14 more.
pub fn parse_e164(field: &str, raw: &str) -> Result<String, FieldError> {
    let digits = raw.strip_prefix('+').unwrap_or("");
    let ok = (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(FieldError::new(
            field,
            "must be an international number in E.164 form, e.g. +447700900123",
        ))
    }
}

/// The languages texts exist in: English and Welsh.
pub const LANGUAGES: [&str; 2] = ["en", "cy"];

pub fn parse_language(field: &str, raw: &str) -> Result<String, FieldError> {
    if LANGUAGES.contains(&raw) {
        Ok(raw.to_owned())
    } else {
        Err(FieldError::new(field, "must be en (English) or cy (Welsh)"))
    }
}

#[cfg(test)]
mod contact_tests {
    use super::*;

    #[test]
    fn e164_and_languages() {
        for good in ["+447700900123", "+12025550123", "+3531234567"] {
            assert!(parse_e164("phone", good).is_ok(), "{good}");
        }
        for bad in [
            "07700900123",
            "+0447700900",
            "+44 7700 900123",
            "+44",
            "",
            "+4477009001234567",
        ] {
            assert!(parse_e164("phone", bad).is_err(), "{bad}");
        }
        assert!(parse_language("language", "cy").is_ok());
        assert!(parse_language("language", "fr").is_err());
    }
}
