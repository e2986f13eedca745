//! The JSON documents of the contract (`Outing`, `Checkin`, `Alert`), built from stored rows
//! under the viewer's visibility. Three edges send them: the API's answers, the webhook body
//! (an alert as its recipient may see it) and the stored answer an idempotent check-in replays,
//! so they live beside `http/` rather than in it; they import only the domain and stored rows.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::account::Role;
use crate::domain::caution::Level;
use crate::domain::delivery::{Channel, DeliveryStatus};
use crate::domain::escalation::{AlertKind, AlertStatus, OutingStatus};
use crate::domain::ids::{AlertId, OrgId, OutingId, UserId};
use crate::domain::incident::{Category, IncidentStatus};
use chrono::{DateTime, Utc};

use crate::domain::time::from_millis;
use crate::error::AppError;
use crate::store::accounts::parse_id;
use crate::store::alerts::{AlertRow, DeliveryRecord};
use crate::store::outings::{CheckinRow, OutingRow};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PersonRef {
    pub id: UserId,
    pub display_name: String,
    /// E.164, for a call: shown to those who may see the person's live location, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecipientRef {
    pub id: UserId,
    pub display_name: String,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckinView {
    pub id: String,
    /// Null once removed by the retention job.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub recorded_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// `ok`, `need_help`, or for positions sent with other actions `panic` / `end`.
    pub kind: String,
    pub battery_pct: Option<i32>,
    pub inside_area: Option<bool>,
}

impl From<&CheckinRow> for CheckinView {
    fn from(row: &CheckinRow) -> Self {
        CheckinView {
            id: row.id.clone(),
            lat: row.lat,
            lon: row.lon,
            accuracy_m: row.accuracy_m,
            recorded_at: from_millis(row.recorded_at),
            received_at: from_millis(row.received_at),
            kind: row.kind.clone(),
            battery_pct: row.battery_pct,
            inside_area: row.inside_area,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LocationView {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Null for the organisation's webhook (not a person).
    pub recipient: Option<RecipientRef>,
    pub level: i32,
    pub channel: Channel,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertView {
    pub id: AlertId,
    pub outing_id: OutingId,
    pub canvasser: PersonRef,
    pub kind: AlertKind,
    pub level: i32,
    pub status: AlertStatus,
    pub opened_at: DateTime<Utc>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<PersonRef>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub note: Option<String>,
    /// Why it opened, beyond its kind: a "check on me" note, an unanswered "are you OK?".
    pub reason: Option<String>,
    pub last_location: Option<LocationView>,
    pub notifications: Vec<DeliveryView>,
}

pub fn alert_view(
    row: &AlertRow,
    canvasser_name: String,
    canvasser_phone: Option<String>,
    acknowledged_by: Option<PersonRef>,
    deliveries: Vec<DeliveryRecord>,
) -> Result<AlertView, AppError> {
    let last_location = match (row.last_lat, row.last_lon, row.last_recorded_at) {
        (Some(lat), Some(lon), Some(at)) => Some(LocationView {
            lat,
            lon,
            accuracy_m: row.last_accuracy_m,
            recorded_at: from_millis(at),
        }),
        _ => None,
    };
    let notifications = deliveries
        .into_iter()
        .map(|d| {
            Ok(DeliveryView {
                recipient: match d.recipient_id {
                    Some(id) => Some(RecipientRef {
                        id: parse_id(&id, "user")?,
                        display_name: d.display_name.unwrap_or_default(),
                        role: d.role.ok_or_else(|| {
                            AppError::internal("a delivery's recipient has no account")
                        })?,
                    }),
                    None => None,
                },
                level: d.level,
                channel: d.channel,
                status: d.status,
                attempts: d.attempts,
                sent_at: d.sent_at.map(from_millis),
                last_error: d.last_error,
            })
        })
        .collect::<Result<_, AppError>>()?;
    Ok(AlertView {
        id: row.id,
        outing_id: row.outing_id,
        canvasser: PersonRef {
            id: row.canvasser_id,
            display_name: canvasser_name,
            phone: canvasser_phone,
        },
        kind: row.kind,
        level: row.level,
        status: row.status,
        opened_at: from_millis(row.opened_at),
        escalated_at: row.escalated_at.map(from_millis),
        acknowledged_at: row.acknowledged_at.map(from_millis),
        acknowledged_by,
        resolved_at: row.resolved_at.map(from_millis),
        resolution: row.resolution.clone(),
        note: row.note.clone(),
        reason: row.reason.clone(),
        last_location,
        notifications,
    })
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutingView {
    pub id: OutingId,
    pub canvasser: PersonRef,
    pub org_id: OrgId,
    pub status: OutingStatus,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub checkin_interval_s: i64,
    pub next_checkin_due_at: Option<DateTime<Utc>>,
    pub planned_end_at: Option<DateTime<Utc>>,
    /// GeoJSON Polygon/MultiPolygon or `{"type": "Circle", "center": [lon, lat], "radius_m": R}`.
    #[schema(value_type = Option<Object>)]
    pub area: Option<Value>,
    pub companions: Vec<PersonRef>,
    pub solo: bool,
    pub note: Option<String>,
    /// Null when the viewer may not see live location.
    pub last_checkin: Option<CheckinView>,
    pub inside_area: Option<bool>,
    pub open_alert: Option<AlertView>,
}

/// What of an outing the viewer gets.
pub struct OutingParts {
    pub canvasser_name: String,
    /// Only for a viewer who may see live location.
    pub canvasser_phone: Option<String>,
    pub companions: Vec<PersonRef>,
    /// `None` when the viewer may not see live location.
    pub last_checkin: Option<Option<CheckinRow>>,
    pub open_alert: Option<AlertView>,
}

pub fn outing_view(row: &OutingRow, parts: OutingParts) -> Result<OutingView, AppError> {
    let sees_location = parts.last_checkin.is_some();
    Ok(OutingView {
        id: row.id,
        canvasser: PersonRef {
            id: row.canvasser_id,
            display_name: parts.canvasser_name,
            phone: parts.canvasser_phone,
        },
        org_id: row.org_id,
        status: row.status,
        started_at: from_millis(row.started_at),
        ended_at: row.ended_at.map(from_millis),
        checkin_interval_s: row.checkin_interval_s,
        next_checkin_due_at: row.next_checkin_due_at.map(from_millis),
        planned_end_at: row.planned_end_at.map(from_millis),
        area: row
            .area
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok()),
        companions: parts.companions,
        solo: row.solo,
        note: row.note.clone(),
        last_checkin: parts.last_checkin.flatten().as_ref().map(CheckinView::from),
        inside_area: if sees_location { row.inside_area } else { None },
        open_alert: parts.open_alert,
    })
}

/// The 201 body of a check-in: the stored check-in and the outing as its canvasser now sees it.
#[derive(Serialize, ToSchema)]
pub struct CheckinResponse {
    pub checkin: CheckinAnswerView,
    pub outing: OutingView,
}

/// A position as the incident log keeps it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PointView {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentEntryView {
    pub id: String,
    pub at: DateTime<Utc>,
    pub author: PersonRef,
    /// `note`, or `close` for the entry that closed the incident.
    pub kind: String,
    pub text: String,
    /// SHA-256 (hex) of the previous link's hash and this entry.
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentView {
    pub id: String,
    pub org_id: String,
    pub reporter: PersonRef,
    pub category: Category,
    pub description: String,
    pub occurred_at: DateTime<Utc>,
    pub reported_at: DateTime<Utc>,
    pub location: Option<PointView>,
    pub outing_id: Option<String>,
    pub share_with_police: bool,
    pub status: IncidentStatus,
    pub entries: Vec<IncidentEntryView>,
    /// The chain's head: the last entry's hash, or the report's own when there is none.
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CautionView {
    pub id: String,
    pub org_id: String,
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
    pub level: Level,
    pub reason: String,
    pub created_by: PersonRef,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A check-in as its own answer gives it: with the cautions whose circle holds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckinAnswerView {
    #[serde(flatten)]
    pub checkin: CheckinView,
    pub cautions: Vec<CautionView>,
}

/// The body's `incident` of an `incident` webhook event: what happened, where to read it, and
/// nothing of the report's text or position (those stay behind a login, read audited).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentEventView {
    pub id: String,
    pub org_id: String,
    pub category: Category,
    pub occurred_at: DateTime<Utc>,
    pub reported_at: DateTime<Utc>,
    pub outing_id: Option<String>,
    pub share_with_police: bool,
    /// The app's page of the incident (under the server's public URL).
    pub url: String,
}

pub fn incident_event(row: &crate::store::incidents::IncidentRow) -> IncidentEventView {
    IncidentEventView {
        id: row.id.clone(),
        org_id: row.org_id.clone(),
        category: row.category,
        occurred_at: from_millis(row.occurred_at),
        reported_at: from_millis(row.reported_at),
        outing_id: row.outing_id.clone(),
        share_with_police: row.share_with_police,
        url: format!("/app/incidents/{}", row.id),
    }
}
