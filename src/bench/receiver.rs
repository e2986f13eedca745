//! A loopback push service for the benchmark: answers 201 at once and timestamps each arrival
//! with its `Topic` (the alert id), so the lag from deadline to delivery can be measured.
//! (The tests' receiver decrypts and verifies every message; here only timing matters.)

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

#[derive(Clone)]
pub struct Receiver {
    port: u16,
    arrivals: Arc<Mutex<Vec<(String, i64)>>>,
}

async fn accept(
    req: HttpRequest,
    _body: web::Bytes,
    arrivals: web::Data<Mutex<Vec<(String, i64)>>>,
) -> HttpResponse {
    let topic = req
        .headers()
        .get("topic")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let now = chrono::Utc::now().timestamp_millis();
    arrivals
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((topic, now));
    HttpResponse::Created().finish()
}

impl Receiver {
    pub async fn start() -> Result<Receiver, String> {
        let arrivals = web::Data::new(Mutex::new(Vec::new()));
        let shared = arrivals.clone().into_inner();
        let data = arrivals.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024))
                .route("/push/{name}", web::post().to(accept))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .map_err(|e| e.to_string())?;
        let port = server.addrs().first().map(|a| a.port()).ok_or("no port")?;
        tokio::spawn(server.run());
        Ok(Receiver {
            port,
            arrivals: shared,
        })
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn count(&self) -> usize {
        self.arrivals.lock().map(|a| a.len()).unwrap_or(0)
    }

    pub fn arrivals(&self) -> Vec<(String, i64)> {
        self.arrivals.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Deliveries per second between the first and the last arrival.
    pub fn rate(&self) -> f64 {
        let arrivals = self.arrivals();
        match (
            arrivals.iter().map(|a| a.1).min(),
            arrivals.iter().map(|a| a.1).max(),
        ) {
            (Some(first), Some(last)) if last > first => {
                arrivals.len() as f64 / ((last - first) as f64 / 1000.0)
            }
            _ => 0.0,
        }
    }
}
