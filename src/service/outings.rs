//! Starting, checking in to, ending and viewing outings.

use crate::domain::account::Role;
use crate::domain::area::{self, Area};
use crate::domain::caller::Caller;
use crate::domain::checkin::{
    BatteryPct, CheckinInterval, CheckinKind, DisplayOrder, PinCheck, Position,
};
use crate::domain::delivery::MessageType;
use crate::domain::escalation::{AlertKind, AlertStatus, OutingStatus};
use crate::domain::ids::{CheckinId, OutingId, UserId};
use crate::domain::outing::{checkin_effect, IncomingCheckin, OutingState};
use crate::domain::policy::EscalationPolicy;
use crate::domain::time::{from_millis, to_millis, Instant};
use crate::domain::visibility::{
    hidden_from, outing_visibility, OutingFacts, OutingVisibility, Viewer,
};
use crate::error::AppError;
use crate::service::alerts;
use crate::service::facts::{
    companions_of, org_policy, outing_clock, reschedule, LastLocation, Raised,
};
use crate::service::notify::{self, Lookups};
use crate::store::outings::{CheckinRow, OutingRow};
use crate::store::{self, DbConn};
use crate::wire::{self as views, OutingParts, OutingView, PersonRef};

/// A validated request to start an outing.
pub struct StartOuting {
    pub interval: CheckinInterval,
    pub planned_end_at: Option<Instant>,
    pub area: Option<Area>,
    pub companions: Vec<UserId>,
    pub note: Option<String>,
    pub start_location: Option<Position>,
}

/// A validated check-in.
#[derive(Debug, Clone)]
pub struct NewCheckin {
    pub position: Position,
    pub recorded_at: Option<Instant>,
    pub battery_pct: Option<BatteryPct>,
    pub kind: CheckinKind,
    pub client_id: Option<String>,
}

/// The server settings that outing rules depend on.
#[derive(Debug, Clone, Copy)]
pub struct OutingRules {
    pub default_policy: EscalationPolicy,
}

impl From<&crate::config::Settings> for OutingRules {
    fn from(settings: &crate::config::Settings) -> Self {
        OutingRules {
            default_policy: settings.escalation,
        }
    }
}

fn parse_area(row: &OutingRow) -> Option<Area> {
    // Stored areas were validated on the way in: read back, not checked again (a large
    // polygon's check costs tens of milliseconds inside the write transaction). An
    // unreadable one means "no geofence", not a failed check-in.
    let value: serde_json::Value = serde_json::from_str(row.area.as_deref()?).ok()?;
    area::parse_stored_area(&value)
}

/// Starts an outing for `caller`. Companions must be canvassers or organisers of the same
/// organisation. A start location becomes the first check-in.
pub fn start(
    conn: &mut DbConn,
    caller: &Caller,
    req: StartOuting,
    default_policy: &EscalationPolicy,
    now_ms: i64,
) -> Result<Started, AppError> {
    if !matches!(caller.role, Role::Canvasser | Role::Organiser) {
        return Err(AppError::Forbidden(
            "only canvassers and organisers run outings".into(),
        ));
    }
    let org = caller
        .org_id
        .ok_or_else(|| AppError::Forbidden("you belong to no organisation".into()))?;
    if store::outings::open_outing_of(conn, caller.id)?.is_some() {
        return Err(AppError::Conflict(
            "you already have an outing that has not ended".into(),
        ));
    }
    let mut errors = Vec::new();
    for (i, companion) in req.companions.iter().enumerate() {
        let field = format!("companions[{i}]");
        if *companion == caller.id {
            errors.push(crate::domain::field_error::FieldError::new(
                field,
                "you cannot accompany yourself",
            ));
            continue;
        }
        let ok = store::accounts::find(conn, *companion)?.is_some_and(|u| {
            u.org_id.as_deref() == Some(org.to_string().as_str())
                && matches!(u.role, Role::Canvasser | Role::Organiser)
                && u.disabled_at.is_none()
        });
        if !ok {
            errors.push(crate::domain::field_error::FieldError::new(
                field,
                "must be a canvasser or organiser of your organisation",
            ));
        }
    }
    let policy = org_policy(conn, org, default_policy)?;
    let solo = req.companions.is_empty();
    if let (true, Some(max)) = (solo, policy.solo_max_checkin_interval_s) {
        if req.interval.as_secs() > max {
            errors.push(crate::domain::field_error::FieldError::new(
                "checkin_interval_s",
                format!("alone, check in at least every {max} s (your organisation's policy)"),
            ));
        }
    }
    let org_id = org.to_string();
    let cautions = match (&req.area, &req.start_location) {
        (Some(area), _) => crate::service::cautions::touching_area(conn, &org_id, area, now_ms)?,
        (None, Some(p)) => {
            crate::service::cautions::covering(conn, &org_id, p.lat.get(), p.lon.get(), now_ms)?
        }
        (None, None) => Vec::new(),
    };
    let pairs_only = cautions
        .iter()
        .any(|c| c.level == crate::domain::caution::Level::PairsOnly);
    if solo && pairs_only && req.area.is_some() {
        errors.push(crate::domain::field_error::FieldError::new(
            "companions",
            "a caution in this area says go in pairs only: add a companion",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let started_at = from_millis(now_ms);
    let due = crate::domain::deadline::next_checkin_due_at(
        started_at,
        req.interval.as_secs(),
        req.planned_end_at,
    );
    let id = OutingId::new();
    let mut row = OutingRow {
        id,
        canvasser_id: caller.id,
        org_id: org,
        status: OutingStatus::Active,
        started_at: now_ms,
        ended_at: None,
        checkin_interval_s: req.interval.as_secs(),
        next_checkin_due_at: Some(to_millis(due)),
        planned_end_at: req.planned_end_at.map(to_millis),
        area: req.area.as_ref().map(|a| area::to_geojson(a).to_string()),
        solo,
        note: req.note,
        last_checkin_id: None,
        last_checkin_recorded_at: None,
        last_checkin_received_at: None,
        check_on_me_due_at: None,
        check_on_me_note: None,
        welfare_due_at: None,
        welfare_note: None,
        welfare_token_hash: None,
        last_received_at: now_ms,
        inside_area: None,
        low_battery_notified: false,
        outside_area_notified: false,
        reminder_sent_for: None,
        open_alert_id: None,
        next_action_at: None,
        claimed_by: None,
        claimed_until: None,
        created_at: now_ms,
        updated_at: now_ms,
    };
    if let Some(position) = req.start_location {
        let inside = req.area.as_ref().map(|a| {
            area::contains(
                a,
                position.lat.get(),
                position.lon.get(),
                position.accuracy_m.map(|x| x.get()),
            )
        });
        let checkin = checkin_row(
            &id.to_string(),
            caller.id,
            &position,
            None,
            CheckinKind::Ok,
            "start",
            now_ms,
            now_ms,
            inside,
            None,
        );
        row.set_latest(&checkin);
        row.inside_area = inside;
        reschedule(&mut row, &policy)?;
        store::outings::insert_outing(conn, &row, &req.companions)?;
        store::outings::insert_checkin(conn, &checkin)?;
        if inside == Some(false) {
            store::outings::record_event(conn, &id.to_string(), "left_area", now_ms, None)?;
        }
    } else {
        reschedule(&mut row, &policy)?;
        store::outings::insert_outing(conn, &row, &req.companions)?;
    }
    Ok(Started { row, cautions })
}

/// A started outing and the cautions that bear on it (in or touching its area, or holding its
/// start location when it has no area).
pub struct Started {
    pub row: OutingRow,
    pub cautions: Vec<crate::store::cautions::CautionRow>,
}

#[allow(clippy::too_many_arguments)]
fn checkin_row(
    outing: &str,
    user: UserId,
    position: &Position,
    battery: Option<BatteryPct>,
    kind: CheckinKind,
    source: &str,
    recorded_at: i64,
    received_at: i64,
    inside_area: Option<bool>,
    client_id: Option<String>,
) -> CheckinRow {
    CheckinRow {
        id: CheckinId::new().to_string(),
        outing_id: outing.to_owned(),
        user_id: user.to_string(),
        lat: Some(position.lat.get()),
        lon: Some(position.lon.get()),
        accuracy_m: position.accuracy_m.map(|a| a.get()),
        // Validated 0–100; whole percent is all a phone reports.
        battery_pct: battery.map(|b| b.get().round() as i32),
        kind: kind.as_str().to_owned(),
        source: source.to_owned(),
        recorded_at,
        received_at,
        inside_area,
        client_id,
        location_purged_at: None,
    }
}

/// The viewer's visibility of an outing, with the facts it was decided on.
/// What a viewer may see of an outing, with the facts it was decided on.
pub struct Seen {
    pub visibility: OutingVisibility,
    pub companions: Vec<(UserId, String)>,
    pub open_alert: Option<store::alerts::AlertRow>,
}

pub fn visibility(conn: &mut DbConn, caller: &Caller, row: &OutingRow) -> Result<Seen, AppError> {
    let companions = companions_of(conn, row)?;
    let companion_ids: Vec<UserId> = companions.iter().map(|(id, _)| *id).collect();
    let open_alert = match row.open_alert_id {
        Some(id) => store::alerts::find(conn, id)?.filter(|a| a.status != AlertStatus::Resolved),
        None => None,
    };
    let police_orgs = if caller.role == Role::Police {
        store::accounts::police_orgs(conn, caller.id)?
    } else {
        Vec::new()
    };
    let viewer = Viewer {
        id: caller.id,
        role: caller.role,
        org_id: caller.org_id,
        police_orgs: &police_orgs,
    };
    let facts = OutingFacts {
        canvasser: row.canvasser_id,
        org_id: row.org_id,
        companions: &companion_ids,
        open_alert_level: open_alert.as_ref().map(store::alerts::AlertRow::level),
        open_alert_is_panic_or_duress: open_alert
            .as_ref()
            .is_some_and(|a| matches!(a.kind, AlertKind::Panic | AlertKind::Duress)),
    };
    Ok(Seen {
        visibility: outing_visibility(&viewer, &facts),
        companions,
        open_alert,
    })
}

/// Loads an outing for someone who must be its canvasser; 404 when they cannot see it at all,
/// 403 when they can but it is not theirs.
pub(crate) fn own_outing_for_update(
    conn: &mut DbConn,
    caller: &Caller,
    id: OutingId,
) -> Result<OutingRow, AppError> {
    let row = store::outings::find_for_update(conn, id)?.ok_or(AppError::NotFound("outing"))?;
    if row.canvasser_id != caller.id {
        return Err(not_theirs(conn, caller, &row)?);
    }
    Ok(row)
}

/// The refusal for someone acting on an outing that is not theirs: 404 when they cannot see
/// it at all, 403 when they can.
fn not_theirs(conn: &mut DbConn, caller: &Caller, row: &OutingRow) -> Result<AppError, AppError> {
    Ok(match visibility(conn, caller, row)?.visibility {
        OutingVisibility::None => AppError::NotFound("outing"),
        _ => AppError::Forbidden("only the canvasser may do this".into()),
    })
}

/// The outing as `caller` may see it, and whether reading it is an audited location read.
pub fn view(
    conn: &mut DbConn,
    caller: &Caller,
    row: &OutingRow,
) -> Result<Option<(OutingView, bool)>, AppError> {
    view_with(conn, caller, row, &[])
}

/// [`view`], given check-ins the caller already holds (those just stored), so the latest one
/// is not read back.
pub fn view_with(
    conn: &mut DbConn,
    caller: &Caller,
    row: &OutingRow,
    known: &[CheckinRow],
) -> Result<Option<(OutingView, bool)>, AppError> {
    let Seen {
        visibility,
        companions,
        open_alert,
    } = visibility(conn, caller, row)?;
    if visibility == OutingVisibility::None {
        return Ok(None);
    }
    let is_canvasser = row.canvasser_id == caller.id;
    let canvasser = row.canvasser_id;
    // Phones go with live location: to those who may see where the person is.
    let sees_location = visibility.sees_location();
    let canvasser_phone = if sees_location {
        store::accounts::phone_of(conn, canvasser)?
    } else {
        None
    };
    let mut companion_refs = Vec::with_capacity(companions.len());
    for (id, display_name) in companions {
        let phone = if sees_location {
            store::accounts::phone_of(conn, id)?
        } else {
            None
        };
        companion_refs.push(PersonRef {
            id,
            display_name,
            phone,
        });
    }
    let canvasser_name = if is_canvasser {
        caller.display_name.clone()
    } else {
        store::outings::display_name(conn, &row.canvasser_id.to_string())?
    };
    let last_checkin = if visibility.sees_location() {
        Some(match row.last_checkin_id.as_deref() {
            Some(id) => match known.iter().find(|c| c.id == id) {
                Some(c) => Some(c.clone()),
                None => store::outings::find_checkin(conn, id)?,
            },
            None => None,
        })
    } else {
        None
    };
    let open_alert = match open_alert {
        // The owner's own responses never reveal an alert hidden from them.
        Some(a) if hidden_from(caller.id, canvasser, a.kind) => None,
        Some(a) if visibility.sees_location() => Some(for_viewer(
            alert_view(conn, &a, canvasser_name.clone())?,
            caller,
        )),
        _ => None,
    };
    let audited = visibility.sees_location()
        && !is_canvasser
        && matches!(caller.role, Role::Organiser | Role::Police);
    let view = views::outing_view(
        row,
        OutingParts {
            canvasser_name,
            canvasser_phone,
            companions: companion_refs,
            last_checkin,
            open_alert,
        },
    )?;
    Ok(Some((view, audited)))
}

/// Contacts (organisers, police) see the whole delivery record; anyone else (the canvasser, a
/// companion) sees only their own rows: who else was alerted is not theirs to know.
pub fn for_viewer(view: views::AlertView, caller: &Caller) -> views::AlertView {
    deliveries_for(view, caller.id, caller.role)
}

/// The alert's delivery record as `viewer` in `role` may see it
/// ([`crate::domain::visibility::sees_every_delivery`]): the API's answers and the webhook
/// posted to a person both ask this.
pub fn deliveries_for(mut view: views::AlertView, viewer: UserId, role: Role) -> views::AlertView {
    if !crate::domain::visibility::sees_every_delivery(role) {
        view.notifications
            .retain(|n| n.recipient.as_ref().is_some_and(|r| r.id == viewer));
    }
    view
}

pub fn alert_view(
    conn: &mut DbConn,
    row: &store::alerts::AlertRow,
    canvasser_name: String,
) -> Result<views::AlertView, AppError> {
    let acknowledged_by = match row.acknowledged_by {
        Some(id) => Some(PersonRef {
            id,
            display_name: store::outings::display_name(conn, &id.to_string())?,
            phone: None,
        }),
        None => None,
    };
    let deliveries = store::alerts::deliveries(conn, &row.id.to_string())?;
    // Whoever may read an alert may see the person's live location: a call is one tap away.
    let phone = store::accounts::phone_of(conn, row.canvasser_id)?;
    views::alert_view(row, canvasser_name, phone, acknowledged_by, deliveries)
}

/// Check-ins as they arrived in one request.
pub struct Submission {
    pub items: Vec<NewCheckin>,
    /// The PIN presented with a live check-in (`NotSet` for batches).
    pub pin: PinCheck,
    /// `live` or `batch`, kept on each row.
    pub source: &'static str,
}

/// What recording check-ins produced.
pub struct Recorded {
    pub stored: Vec<CheckinRow>,
    pub outing: OutingRow,
    /// What the background loops need to look at once this commits.
    pub changes: crate::service::Changes,
}

/// Records one live check-in or an offline batch. Batch items whose `client_id` is already
/// stored are skipped; the rest are stored in `recorded_at` order. The deadline is reset from
/// the time of receipt.
pub fn record_checkins(
    conn: &mut DbConn,
    caller: &Caller,
    outing_id: OutingId,
    submission: Submission,
    rules: &OutingRules,
    now_ms: i64,
) -> Result<Recorded, AppError> {
    let Submission {
        mut items,
        pin,
        source,
    } = submission;
    // The outing and its organisation's policy in one statement (one round trip).
    let (outing, custom_policy) = store::outings::find_for_update_with_policy(conn, outing_id)?
        .ok_or(AppError::NotFound("outing"))?;
    if outing.canvasser_id != caller.id {
        return Err(not_theirs(conn, caller, &outing)?);
    }
    if outing.status == OutingStatus::Ended {
        return Err(AppError::Conflict("this outing has ended".into()));
    }
    if pin == PinCheck::Wrong {
        return Err(AppError::Forbidden("wrong PIN".into()));
    }
    // Offline-queue de-duplication: drop client ids already stored, and repeats within the batch.
    let client_ids: Vec<String> = items.iter().filter_map(|i| i.client_id.clone()).collect();
    if !client_ids.is_empty() {
        let mut seen: std::collections::HashSet<String> =
            store::outings::existing_client_ids(conn, &outing.id.to_string(), &client_ids)?
                .into_iter()
                .collect();
        items.retain(|i| match &i.client_id {
            Some(c) => seen.insert(c.clone()),
            None => true,
        });
    }

    let policy = store::orgs::parse_policy(&outing.org_id.to_string(), custom_policy.as_deref())?
        .unwrap_or(rules.default_policy);
    let open_alert_kind = match outing.open_alert_id {
        Some(id) => store::alerts::find(conn, id)?
            .filter(|a| a.status != AlertStatus::Resolved)
            .map(|a| a.kind),
        None => None,
    };
    let before = outing.clone();
    let plan = plan_checkins(
        outing,
        open_alert_kind,
        items,
        pin,
        caller.id,
        source,
        now_ms,
    )?;
    apply_plan(conn, &before, plan, &policy, now_ms)
}

/// What a submission does to its outing, worked out before anything is written: the rows to
/// store, the outing as it will be (before rescheduling), and what else must happen.
#[derive(Debug)]
pub struct CheckinPlan {
    pub outing: OutingRow,
    pub stored: Vec<CheckinRow>,
    /// Check-ins that took the canvasser out of their planned area (one event each).
    pub left_area_events: usize,
    pub raise: Option<AlertKind>,
    pub resolve: bool,
    /// Notices for organisers (`left_area`, `low_battery`).
    pub notices: Vec<MessageType>,
}

impl CheckinPlan {
    /// One check-in that only moves the outing's clock and its latest check-in: no alert
    /// raised or resolved, no event, no notice. Most check-ins are this, and need nothing
    /// written but the check-in and the outing.
    pub fn is_plain(&self) -> bool {
        self.stored.len() == 1
            && self.left_area_events == 0
            && self.raise.is_none()
            && !self.resolve
            && self.notices.is_empty()
    }
}

/// Works out what storing `items` (already de-duplicated) does to `outing` whose unresolved
/// alert, if any, is of kind `open_alert`. Pure: reads and writes nothing.
#[allow(clippy::too_many_arguments)]
pub fn plan_checkins(
    mut outing: OutingRow,
    open_alert: Option<AlertKind>,
    mut items: Vec<NewCheckin>,
    pin: PinCheck,
    user: UserId,
    source: &str,
    now_ms: i64,
) -> Result<CheckinPlan, AppError> {
    items.sort_by_key(|i| i.recorded_at.map(to_millis).unwrap_or(now_ms));
    let area = parse_area(&outing);
    let latest = match (
        outing.last_checkin_recorded_at,
        outing.last_checkin_received_at,
    ) {
        (Some(recorded), Some(received)) => Some(DisplayOrder::new(
            Some(from_millis(recorded)),
            from_millis(received),
        )),
        _ => None,
    };
    let mut state = OutingState {
        status: outing_clock(&outing)?.status,
        started_at: from_millis(outing.started_at),
        checkin_interval_s: outing.checkin_interval_s,
        planned_end_at: outing.planned_end_at.map(from_millis),
        next_checkin_due_at: outing.next_checkin_due_at.map(from_millis),
        latest,
        inside_area: outing.inside_area,
        open_alert,
    };
    let mut stored = Vec::with_capacity(items.len());
    let mut raise: Option<AlertKind> = None;
    let mut resolve = false;
    let mut left_area_events = 0;
    let mut latest_battery: Option<Option<i32>> = None;
    let received_at = from_millis(now_ms);
    for item in items {
        let position = &item.position;
        let inside = area.as_ref().map(|a| {
            area::contains(
                a,
                position.lat.get(),
                position.lon.get(),
                position.accuracy_m.map(|x| x.get()),
            )
        });
        let incoming = IncomingCheckin {
            kind: item.kind,
            recorded_at: item.recorded_at,
            received_at,
            inside_area: inside,
            pin,
        };
        let effect = checkin_effect(&state, &incoming);
        let order = DisplayOrder::new(item.recorded_at, received_at);
        let row = checkin_row(
            &outing.id.to_string(),
            user,
            position,
            item.battery_pct,
            item.kind,
            source,
            to_millis(order.recorded_at()),
            now_ms,
            inside,
            item.client_id,
        );
        if effect.left_area {
            left_area_events += 1;
        }
        if effect.becomes_latest {
            latest_battery = Some(row.battery_pct);
            state.latest = Some(order);
            state.inside_area = inside;
            outing.set_latest(&row);
            outing.inside_area = inside;
        }
        state.next_checkin_due_at = Some(effect.next_checkin_due_at);
        state.status = effect.status;
        raise = match (raise, effect.raises) {
            (Some(AlertKind::Duress), _) | (_, Some(AlertKind::Duress)) => Some(AlertKind::Duress),
            (current, new) => new.or(current),
        };
        resolve |= effect.resolves_alert;
        stored.push(row);
    }
    if stored.is_empty() {
        // Every item was a duplicate: nothing happened, nothing changes.
        return Ok(CheckinPlan {
            outing,
            stored,
            left_area_events,
            raise,
            resolve,
            notices: Vec::new(),
        });
    }
    outing.status = state.status;
    outing.next_checkin_due_at = state.next_checkin_due_at.map(to_millis);
    // A check-in answers a pending check-on-me and an "are you OK?": the regular deadline
    // alone rules again.
    crate::service::escalation::clear_pending_checks(&mut outing);
    outing.last_received_at = now_ms;
    outing.updated_at = now_ms;
    let notices = notices(&mut outing, left_area_events > 0, latest_battery.flatten());
    Ok(CheckinPlan {
        outing,
        stored,
        left_area_events,
        raise,
        resolve,
        notices,
    })
}

/// Writes what [`plan_checkins`] worked out, one statement at a time: the check-ins, events,
/// notices, the alert raised or resolved, and the rescheduled outing.
fn apply_plan(
    conn: &mut DbConn,
    before: &OutingRow,
    plan: CheckinPlan,
    policy: &EscalationPolicy,
    now_ms: i64,
) -> Result<Recorded, AppError> {
    let CheckinPlan {
        mut outing,
        stored,
        left_area_events,
        raise,
        resolve,
        notices,
    } = plan;
    if stored.is_empty() {
        return Ok(Recorded {
            stored,
            outing,
            changes: Default::default(),
        });
    }
    for row in &stored {
        store::outings::insert_checkin(conn, row)?;
    }
    for _ in 0..left_area_events {
        store::outings::record_event(conn, &outing.id.to_string(), "left_area", now_ms, None)?;
    }
    let mut changes = crate::service::Changes::default();
    for notice in notices {
        notify::notice(conn, &outing, notice, now_ms)?;
        changes.outbox = true;
    }
    let location = last_location(&stored);
    let alert_before = outing.open_alert_id;
    if let Some(kind) = raise {
        let raised = alerts::raise(
            conn,
            &mut Lookups::default(),
            &mut outing,
            kind,
            location,
            policy,
            now_ms,
        )?;
        notify::alert_raised(conn, &outing, &raised, now_ms)?;
        changes.outbox = true;
        changes.alert_events = true;
        // A raised alert has timers of its own: let the scheduler read them.
        changes.next_action_at = Some(now_ms);
    } else if resolve {
        resolve_open_alert(conn, &mut outing, "checked_in", now_ms)?;
        if outing.open_alert_id != alert_before {
            changes.outbox = true;
            changes.alert_events = true;
        }
    }
    reschedule(&mut outing, policy)?;
    store::outings::update_from(conn, before, &outing)?;
    changes.next_action_at = match (changes.next_action_at, outing.next_action_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(Recorded {
        stored,
        outing,
        changes,
    })
}

/// Battery at or below this is worth an organiser's attention.
pub const LOW_BATTERY_PCT: i32 = 15;
/// ...and above this the episode is over (a gap, so a battery hovering at 15 % does not
/// notify again and again).
const BATTERY_RECOVERED_PCT: i32 = 20;

/// Notices for organisers, once per outing per episode (not escalated): the canvasser left the
/// area, or the phone's battery is low. Updates the outing's episode flags.
fn notices(outing: &mut OutingRow, left_area: bool, battery: Option<i32>) -> Vec<MessageType> {
    let mut notices = Vec::new();
    if left_area && !outing.outside_area_notified {
        outing.outside_area_notified = true;
        notices.push(MessageType::LeftArea);
    } else if outing.inside_area == Some(true) {
        outing.outside_area_notified = false;
    }
    match battery {
        Some(b) if b <= LOW_BATTERY_PCT && !outing.low_battery_notified => {
            outing.low_battery_notified = true;
            notices.push(MessageType::LowBattery);
        }
        Some(b) if b > BATTERY_RECOVERED_PCT => outing.low_battery_notified = false,
        _ => {}
    }
    notices
}

fn last_location(stored: &[CheckinRow]) -> Option<LastLocation> {
    stored.iter().max_by_key(|c| c.recorded_at).and_then(|c| {
        Some(LastLocation {
            lat: c.lat?,
            lon: c.lon?,
            accuracy_m: c.accuracy_m,
            recorded_at_ms: c.recorded_at,
        })
    })
}

/// Resolves the outing's unresolved alert, unless it is one hidden from the owner (duress,
/// wrong PINs: only a contact may clear those, since whatever the phone does may be coerced).
pub fn resolve_open_alert(
    conn: &mut DbConn,
    outing: &mut OutingRow,
    resolution: &str,
    now_ms: i64,
) -> Result<(), AppError> {
    let Some(id) = outing.open_alert_id else {
        return Ok(());
    };
    let Some(mut alert) = store::alerts::find_for_update(conn, id)? else {
        return Ok(());
    };
    if alert.status == AlertStatus::Resolved {
        outing.open_alert_id = None;
        return Ok(());
    }
    if alert.kind.hidden_from_owner() {
        return Ok(());
    }
    alerts::resolve(conn, &mut alert, resolution, None, None, now_ms)?;
    notify::all_clear(conn, outing, &alert, now_ms)?;
    outing.open_alert_id = None;
    Ok(())
}

/// Ends an outing. With PINs set a PIN is required: the safe PIN ends it and clears a pending
/// alert; the duress PIN answers exactly the same and silently raises a duress alert.
pub fn end(
    conn: &mut DbConn,
    caller: &Caller,
    outing_id: OutingId,
    pin: PinCheck,
    position: Option<Position>,
    default_policy: &EscalationPolicy,
    now_ms: i64,
) -> Result<OutingRow, AppError> {
    let mut outing = own_outing_for_update(conn, caller, outing_id)?;
    if outing.status == OutingStatus::Ended {
        return Err(AppError::Conflict("this outing has already ended".into()));
    }
    match pin {
        PinCheck::Wrong => return Err(AppError::Forbidden("wrong PIN".into())),
        PinCheck::Missing => return Err(AppError::field("pin", "is required: you have set PINs")),
        PinCheck::NotSet | PinCheck::Safe | PinCheck::Duress => {}
    }
    let policy = org_policy(conn, outing.org_id, default_policy)?;
    let mut location = None;
    if let Some(position) = position {
        let inside = parse_area(&outing).map(|a| {
            area::contains(
                &a,
                position.lat.get(),
                position.lon.get(),
                position.accuracy_m.map(|x| x.get()),
            )
        });
        let row = checkin_row(
            &outing.id.to_string(),
            caller.id,
            &position,
            None,
            CheckinKind::Ok,
            "end",
            now_ms,
            now_ms,
            inside,
            None,
        );
        store::outings::insert_checkin(conn, &row)?;
        outing.set_latest(&row);
        outing.inside_area = inside;
        location = last_location(std::slice::from_ref(&row));
    }
    outing.status = OutingStatus::Ended;
    outing.ended_at = Some(now_ms);
    outing.updated_at = now_ms;
    if pin == PinCheck::Duress {
        let raised = alerts::raise(
            conn,
            &mut Lookups::default(),
            &mut outing,
            AlertKind::Duress,
            location,
            &policy,
            now_ms,
        )?;
        notify::alert_raised(conn, &outing, &raised, now_ms)?;
    } else {
        resolve_open_alert(conn, &mut outing, "ended_safe", now_ms)?;
    }
    reschedule(&mut outing, &policy)?;
    store::outings::update(conn, &outing)?;
    Ok(outing)
}

/// The panic button: opens a panic alert at level 2, or upgrades the outing's open alert.
/// The canvasser and the outing's companions may press it.
pub fn panic(
    conn: &mut DbConn,
    caller: &Caller,
    outing_id: OutingId,
    position: Option<Position>,
    default_policy: &EscalationPolicy,
    now_ms: i64,
) -> Result<(OutingRow, Raised), AppError> {
    let mut outing =
        store::outings::find_for_update(conn, outing_id)?.ok_or(AppError::NotFound("outing"))?;
    let is_canvasser = outing.canvasser_id == caller.id;
    if !is_canvasser {
        let companions = companions_of(conn, &outing)?;
        if !companions.iter().any(|(id, _)| *id == caller.id) {
            let visibility = visibility(conn, caller, &outing)?.visibility;
            return Err(match visibility {
                OutingVisibility::None => AppError::NotFound("outing"),
                _ => AppError::Forbidden(
                    "only the canvasser and companions may raise a panic".into(),
                ),
            });
        }
    }
    let policy = org_policy(conn, outing.org_id, default_policy)?;
    let location = position.map(|p| LastLocation {
        lat: p.lat.get(),
        lon: p.lon.get(),
        accuracy_m: p.accuracy_m.map(|a| a.get()),
        recorded_at_ms: now_ms,
    });
    let raised = alerts::raise(
        conn,
        &mut Lookups::default(),
        &mut outing,
        AlertKind::Panic,
        location,
        &policy,
        now_ms,
    )?;
    notify::alert_raised(conn, &outing, &raised, now_ms)?;
    outing.updated_at = now_ms;
    store::outings::update(conn, &outing)?;
    Ok((outing, raised))
}
