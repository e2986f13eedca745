//! What every outbound HTTP client shares: the address guard, proxies only when configured,
//! no redirects, and answers read to a bound.

use std::sync::Arc;
use std::time::Duration;

use super::ssrf::GuardedResolver;
use crate::config::PushSettings;

/// The most of any outside answer (push service, webhook receiver, SMS provider) that is read;
/// the rest is dropped with the connection. Enough for any error message worth logging.
pub const MAX_ANSWER_BYTES: usize = 4096;

/// A client builder with the guards every outbound client needs. Proxy variables in the
/// environment (`HTTPS_PROXY`, ...) are ignored unless `push.proxy` names one: a proxy resolves
/// names itself, past the address guard, so it must be the operator's explicit choice.
pub fn client_builder(settings: &PushSettings) -> Result<reqwest::ClientBuilder, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.request_timeout_ms))
        .connect_timeout(Duration::from_millis(
            settings.request_timeout_ms.min(5_000),
        ))
        // A redirect could lead anywhere, including inside.
        .redirect(reqwest::redirect::Policy::none());
    builder = match &settings.proxy {
        Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy)?),
        None => builder.no_proxy(),
    };
    if !settings.allow_private_endpoints {
        builder = builder.dns_resolver(Arc::new(GuardedResolver));
    }
    Ok(builder)
}

/// Reads at most [`MAX_ANSWER_BYTES`] of an answer's body, as text (lossy), and drops the
/// rest with the connection: an endpoint that answers a 200 MB error page costs 4 KiB.
pub async fn read_bounded(mut response: reqwest::Response) -> String {
    let mut body: Vec<u8> = Vec::new();
    while body.len() < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ANSWER_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    drop(response);
    String::from_utf8_lossy(&body).into_owned()
}
