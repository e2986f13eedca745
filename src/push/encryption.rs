//! Web Push message encryption (RFC 8291: the `aes128gcm` content coding of RFC 8188, keyed by
//! an ECDH agreement with the subscription's P-256 key and its auth secret), by the `web-push`
//! crate (which encrypts with `ece`: a fresh key pair and salt per message, and padding to a
//! multiple of 128 bytes, so a message's length says little about what it carries). VAPID is
//! signed separately (`vapid.rs`), because `web-push`'s signer drops the endpoint's port from
//! `aud`.

use web_push::{ContentEncoding, SubscriptionInfo, WebPushMessageBuilder};

/// The largest plaintext `web-push` encrypts (what the big push services take).
pub const MAX_PLAINTEXT_BYTES: usize = 3052;

#[derive(Debug, thiserror::Error)]
pub enum EncryptError {
    #[error("the subscription's keys are not a P-256 public key and a 16-byte auth secret")]
    BadKeys,
    #[error("the message is too large for a push ({0} bytes)")]
    TooLarge(usize),
    #[error("encryption failed: {0}")]
    Other(String),
}

/// The request body for `plaintext` to the subscription with keys `p256dh` and `auth` (as
/// the browser gave them: base64url) at `endpoint`.
pub fn encrypt(
    endpoint: &str,
    p256dh: &str,
    auth: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, EncryptError> {
    if plaintext.len() > MAX_PLAINTEXT_BYTES {
        return Err(EncryptError::TooLarge(plaintext.len()));
    }
    let info = SubscriptionInfo::new(
        endpoint,
        p256dh.trim_end_matches('='),
        auth.trim_end_matches('='),
    );
    let mut builder = WebPushMessageBuilder::new(&info);
    builder.set_payload(ContentEncoding::Aes128Gcm, plaintext);
    let message = builder.build().map_err(|e| match e {
        web_push::WebPushError::InvalidCryptoKeys => EncryptError::BadKeys,
        web_push::WebPushError::PayloadTooLarge => EncryptError::TooLarge(plaintext.len()),
        other => EncryptError::Other(other.to_string()),
    })?;
    message
        .payload
        .map(|payload| payload.content)
        .ok_or_else(|| EncryptError::Other("no payload was built".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const ENDPOINT: &str = "https://push.example.net/push/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV";

    /// RFC 8291 Appendix A: the example message decrypts, with the receiver's keys given
    /// there, to the example plaintext, by the implementation that encrypts ours (`ece`).
    #[test]
    fn the_rfc_example_decrypts_to_the_rfc_plaintext() {
        let ua_private = hex("ab5757a70dd4a53e553a6bbf71ffefea2874ec07a6b379e3c48f895a02dc33de");
        let ua_public = hex("042571b2becdfde360551aaf1ed0f4cd366c11cebe555f89bcb7b186a53339173168ece2ebe018597bd30479b86e3c8f8eced577ca59187e9246990db682008b0e");
        let auth = hex("05305932a1c7eabe13b6cec9fda48882");
        let body = hex("0c6bfaadad67958803092d454676f397000010004104fe33f4ab0dea71914db55823f73b54948f41306d920732dbb9a59a53286482200e597a7b7bc260ba1c227998580992e93973002f3012a28ae8f06bbb78e5ec0ff297de5b429bba7153d3a4ae0caa091fd425f3b4b5414add8ab37a19c1bbb05cf5cb5b2a2e0562d558635641ec52812c6c8ff42e95ccb86be7cd");
        let components = ece::EcKeyComponents::new(ua_private, ua_public);
        assert_eq!(
            ece::decrypt(&components, &auth, &body).unwrap(),
            b"When I grow up, I want to be a watermelon"
        );
    }

    /// Fresh keys and padding: `ece` decrypts what this encrypts, at lengths around the
    /// padding blocks, with a fresh salt every time.
    #[test]
    fn ece_decrypts_every_message_and_lengths_are_padded() {
        let (pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
        let components = pair.raw_components().unwrap();
        let p256dh = URL_SAFE_NO_PAD.encode(components.public_key());
        let auth_b64 = URL_SAFE_NO_PAD.encode(auth);
        let mut previous = None;
        for len in [1usize, 2, 126, 127, 128, 129, 255, 1000, 3000] {
            let plaintext: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let body = encrypt(ENDPOINT, &p256dh, &auth_b64, &plaintext).unwrap();
            assert_eq!(ece::decrypt(&components, &auth, &body).unwrap(), plaintext);
            // Header 86 bytes + a multiple of 128 + the 16-byte tag.
            assert_eq!((body.len() - 86 - 16) % 128, 0, "{len}");
            assert_ne!(
                previous.as_ref(),
                Some(&body[..16].to_vec()),
                "a fresh salt"
            );
            previous = Some(body[..16].to_vec());
        }
    }

    #[test]
    fn bad_keys_and_sizes_are_refused() {
        let (pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
        let public = pair.raw_components().unwrap().public_key().to_vec();
        let mut off_curve = public.clone();
        off_curve[64] ^= 1;
        let auth_b64 = URL_SAFE_NO_PAD.encode(auth);
        for key in [&off_curve[..], &public[..33]] {
            assert!(matches!(
                encrypt(ENDPOINT, &URL_SAFE_NO_PAD.encode(key), &auth_b64, b"x"),
                Err(EncryptError::BadKeys)
            ));
        }
        assert!(matches!(
            encrypt(ENDPOINT, "not base64 at all!", &auth_b64, b"x"),
            Err(EncryptError::BadKeys)
        ));
        assert!(matches!(
            encrypt(
                ENDPOINT,
                &URL_SAFE_NO_PAD.encode(&public),
                &auth_b64,
                &[0u8; 4000]
            ),
            Err(EncryptError::TooLarge(4000))
        ));
    }
}
