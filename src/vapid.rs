//! VAPID key pairs (RFC 8292): P-256 keys that identify this server to push services.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand::RngCore;

/// A freshly generated key pair, both halves base64url without padding: the raw 32-byte private
/// scalar and the uncompressed 65-byte public point (what browsers take as `applicationServerKey`).
pub struct VapidKeyPair {
    pub private_key: String,
    pub public_key: String,
}

pub fn generate() -> VapidKeyPair {
    loop {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        // Almost every 32-byte string is a valid scalar; retry on the astronomically rare miss.
        if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
            let public = secret.public_key().to_encoded_point(false);
            return VapidKeyPair {
                private_key: URL_SAFE_NO_PAD.encode(bytes),
                public_key: URL_SAFE_NO_PAD.encode(public.as_bytes()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_is_well_formed() {
        let pair = generate();
        let private = URL_SAFE_NO_PAD.decode(&pair.private_key).unwrap();
        let public = URL_SAFE_NO_PAD.decode(&pair.public_key).unwrap();
        assert_eq!(private.len(), 32);
        assert_eq!(public.len(), 65);
        assert_eq!(public[0], 4);
        let secret = p256::SecretKey::from_slice(&private).unwrap();
        assert_eq!(
            secret.public_key().to_encoded_point(false).as_bytes(),
            public.as_slice()
        );
    }
}
