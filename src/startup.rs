//! Builds the application: storage, keys, HTTP server. Binds before it runs, so tests can ask
//! for port 0 and learn the real port.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::auth::tokens::JwtKeys;
use crate::config::Settings;
use crate::state::{AppState, Clock};
use crate::store::Store;
use crate::{http, telemetry};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("signing keys: {0}")]
    Keys(#[from] crate::auth::tokens::KeyError),
    #[error(transparent)]
    Vapid(#[from] crate::push::vapid::VapidError),
    #[error(transparent)]
    PushClient(#[from] crate::push::sender::ClientError),
    #[error(transparent)]
    Mailer(#[from] crate::push::email::MailerError),
    #[error(transparent)]
    Webhooks(#[from] crate::push::webhook::WebhookError),
    #[error(transparent)]
    Sms(#[from] crate::push::twilio::TwilioError),
    #[error(transparent)]
    Heartbeat(#[from] crate::monitoring::HeartbeatError),
    #[error("cannot index the do-not-knock register: {0}")]
    Cautions(String),
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    metrics_port: Option<u16>,
    /// `/metrics` alone on `server.metrics_bind`, when set.
    metrics_server: Option<Server>,
    /// `monitoring.heartbeat_url`, when set.
    heartbeat: Option<crate::monitoring::Heartbeat>,
}

impl Application {
    /// Opens the store, applies migrations, loads keys and binds the listener.
    pub fn build(settings: Settings) -> Result<Application, StartError> {
        let store = Store::connect(&settings.database)?;
        let applied = store.migrate()?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
        let indexed = store
            .write_blocking(crate::service::cautions::index_unindexed)
            .map_err(|e| StartError::Cautions(e.to_string()))?;
        if indexed > 0 {
            tracing::info!(indexed, "cautions indexed under the current grid");
        }
        match store.database_warnings() {
            Ok(warnings) => {
                for warning in warnings {
                    tracing::warn!("{warning}");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the database server's settings"),
        }
        Self::build_with_store(settings, store, Clock::default())
    }

    pub fn build_with_store(
        settings: Settings,
        store: Store,
        clock: Clock,
    ) -> Result<Application, StartError> {
        // The data folder holds keys: owner-only when Doorstep creates it.
        crate::files::create_private_dir(&settings.server.data_dir).map_err(|source| {
            StartError::DataDir {
                path: settings.server.data_dir.display().to_string(),
                source,
            }
        })?;
        if settings.webhooks.signing_secret.is_some() {
            tracing::warn!(
                "webhooks.signing_secret is no longer used: each personal webhook has its own secret"
            );
        }
        let keys = JwtKeys::load(&settings.auth, &settings.server.data_dir)?;
        let vapid = std::sync::Arc::new(crate::push::vapid::Vapid::load(
            &settings.push,
            &settings.server.data_dir,
        )?);
        let push_client =
            std::sync::Arc::new(crate::push::sender::PushClient::new(&settings.push, vapid)?);
        let mailer = crate::push::email::Mailer::from_settings(&settings)?.map(Arc::new);
        let webhooks = Arc::new(crate::push::webhook::WebhookClient::new(&settings)?);
        let twilio = crate::push::twilio::Twilio::from_settings(&settings.sms, &settings.push)?
            .map(Arc::new);
        let heartbeat = crate::monitoring::Heartbeat::from_settings(&settings)?;
        telemetry::metrics_handle();
        let listener =
            TcpListener::bind(&settings.server.bind).map_err(|source| StartError::Bind {
                address: settings.server.bind.clone(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                address: settings.server.bind.clone(),
                source,
            })?
            .port();
        let workers = settings.server.workers;
        let sessions =
            crate::auth::session_cache::SessionCache::new(settings.auth.session_cache_ms);
        let checkins = crate::service::checkins::CheckinBatcher::new(
            store.clone(),
            crate::service::outings::OutingRules::from(&settings),
        );
        let checkin_ceiling =
            crate::ceiling::CheckinCeiling::new(settings.limits.checkins_per_minute);
        let state = web::Data::new(AppState {
            checkin_ceiling,
            checkins,
            sessions,
            settings: Arc::new(settings),
            store,
            keys,
            clock,
            scheduler: Default::default(),
            push: Default::default(),
            push_client,
            mailer,
            webhooks,
            twilio,
            watch: Default::default(),
        });
        let metrics_server = match state.settings.server.metrics_bind.clone() {
            Some(address) => {
                let listener = TcpListener::bind(&address).map_err(|source| StartError::Bind {
                    address: address.clone(),
                    source,
                })?;
                let metrics_port = listener
                    .local_addr()
                    .map_err(|source| StartError::Bind {
                        address: address.clone(),
                        source,
                    })?
                    .port();
                let metrics_state = state.clone();
                let server = HttpServer::new(move || {
                    App::new().app_data(metrics_state.clone()).route(
                        "/metrics",
                        web::get().to(http::ops::metrics_on_private_bind),
                    )
                })
                .workers(1)
                .shutdown_timeout(1)
                .listen(listener)
                .map_err(|source| StartError::Bind { address, source })?
                .run();
                Some((metrics_port, server))
            }
            None => None,
        };
        let app_state = state.clone();
        let cors_origins = app_state.settings.server.cors_allowed_origins.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(http::query_config())
                .app_data(http::path_config())
                .wrap(http::middleware::problem_errors())
                .wrap(http::middleware::cors(&cors_origins))
                .wrap(from_fn(http::middleware::security_headers))
                .wrap(from_fn(http::middleware::record_metrics))
                .configure(http::routes)
        })
        .shutdown_timeout(5);
        if workers > 0 {
            server = server.workers(workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartError::Bind {
                address: format!("port {port}"),
                source,
            })?
            .run();
        let (metrics_port, metrics_server) = match metrics_server {
            Some((port, server)) => (Some(port), Some(server)),
            None => (None, None),
        };
        Ok(Application {
            port,
            server,
            state,
            metrics_port,
            metrics_server,
            heartbeat,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `server.metrics_bind`, when it is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until the process is told to stop (SIGINT/SIGTERM), then drains in-flight requests.
    /// Also runs the scheduler and the push delivery worker, stopped with the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let settings = self.state.settings.clone();
        self.state.checkins.start();
        let scheduler = settings
            .scheduler
            .enabled
            .then(|| crate::scheduler::spawn(self.state.clone()));
        let worker = settings.push.worker_enabled.then(|| {
            tokio::spawn(crate::push::worker::run(
                self.state.clone(),
                self.state.push_client.clone(),
            ))
        });
        let events = Some(tokio::spawn(crate::watch::run(self.state.clone())));
        let heartbeat = self
            .heartbeat
            .map(|heartbeat| tokio::spawn(crate::monitoring::run(self.state.clone(), heartbeat)));
        let retention = Some(tokio::spawn(crate::scheduler::retention::run(
            self.state.clone(),
        )));
        let metrics = self.metrics_server.map(|server| {
            let handle = server.handle();
            (tokio::spawn(server), handle)
        });
        let result = self.server.await;
        if let Some((task, handle)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        for task in [scheduler, worker, events, retention, heartbeat]
            .into_iter()
            .flatten()
        {
            task.abort();
            let _ = task.await;
        }
        result
    }
}
