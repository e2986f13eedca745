//! A test-only heartbeat check on 127.0.0.1, answering like Healthchecks' ping endpoint
//! (`200 OK` to any GET): it records the paths it was asked for, in order.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

pub struct HeartbeatReceiver {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    paths: Arc<Mutex<Vec<String>>>,
    server: ServerHandle,
}

async fn ping(req: HttpRequest, paths: web::Data<Arc<Mutex<Vec<String>>>>) -> HttpResponse {
    paths
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(req.path().to_owned());
    HttpResponse::Ok().body("OK")
}

impl HeartbeatReceiver {
    pub async fn start() -> HeartbeatReceiver {
        let paths = Arc::new(Mutex::new(Vec::new()));
        let data = web::Data::new(paths.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::get().to(ping))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("heartbeat receiver binds");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        HeartbeatReceiver {
            base: format!("http://127.0.0.1:{port}"),
            paths,
            server: handle,
        }
    }

    /// Every path asked for so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.paths
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many times `path` was asked for.
    pub fn count(&self, path: &str) -> usize {
        self.paths().iter().filter(|p| *p == path).count()
    }

    /// Waits (at most `timeout`) until `path` has been asked for `n` times from now on.
    pub async fn wait_for(&self, path: &str, n: usize, timeout: Duration) {
        let start = self.count(path);
        let deadline = tokio::time::Instant::now() + timeout;
        while self.count(path) < start + n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} not asked for {n} time(s) within {timeout:?}: {:?}",
                self.paths()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
