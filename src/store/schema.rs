//! Diesel table definitions shared by both backends (migrations in `migrations/{sqlite,postgres}`).
//! Instants are epoch milliseconds (`BigInt`).

diesel::table! {
    organisations (id) {
        id -> Text,
        name -> Text,
        escalation_policy -> Nullable<Text>,
        require_totp -> Bool,
        webhook_url -> Nullable<Text>,
        webhook_secret -> Nullable<Text>,
        created_at -> BigInt,
        timezone -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        password_hash -> Text,
        display_name -> Text,
        role -> Text,
        org_id -> Nullable<Text>,
        phone -> Nullable<Text>,
        safe_pin_hash -> Nullable<Text>,
        duress_pin_hash -> Nullable<Text>,
        totp_secret -> Nullable<Text>,
        totp_enabled -> Bool,
        totp_last_step -> Nullable<BigInt>,
        email_alerts -> Bool,
        webhook_url -> Nullable<Text>,
        created_at -> BigInt,
        disabled_at -> Nullable<BigInt>,
        webhook_secret -> Nullable<Text>,
        language -> Text,
        sms_alerts -> Bool,
        voice_alerts -> Bool,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Text,
        user_id -> Text,
        code_hash -> Text,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    police_assignments (org_id, user_id) {
        org_id -> Text,
        user_id -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        session_id -> Text,
        token_hash -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        spent_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    login_attempts (id) {
        id -> Text,
        bucket -> Text,
        attempted_at -> BigInt,
        succeeded -> Bool,
    }
}

diesel::table! {
    push_subscriptions (id) {
        id -> Text,
        user_id -> Text,
        endpoint -> Text,
        p256dh -> Text,
        auth -> Text,
        expiration_time -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    outings (id) {
        id -> Text,
        canvasser_id -> Text,
        org_id -> Text,
        status -> Text,
        started_at -> BigInt,
        ended_at -> Nullable<BigInt>,
        checkin_interval_s -> BigInt,
        next_checkin_due_at -> Nullable<BigInt>,
        planned_end_at -> Nullable<BigInt>,
        area -> Nullable<Text>,
        solo -> Bool,
        note -> Nullable<Text>,
        last_checkin_id -> Nullable<Text>,
        last_received_at -> BigInt,
        inside_area -> Nullable<Bool>,
        low_battery_notified -> Bool,
        outside_area_notified -> Bool,
        reminder_sent_for -> Nullable<BigInt>,
        open_alert_id -> Nullable<Text>,
        next_action_at -> Nullable<BigInt>,
        claimed_by -> Nullable<Text>,
        claimed_until -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        last_checkin_recorded_at -> Nullable<BigInt>,
        last_checkin_received_at -> Nullable<BigInt>,
        check_on_me_due_at -> Nullable<BigInt>,
        check_on_me_note -> Nullable<Text>,
        welfare_due_at -> Nullable<BigInt>,
        welfare_note -> Nullable<Text>,
        welfare_token_hash -> Nullable<Text>,
    }
}

diesel::table! {
    outing_companions (outing_id, user_id) {
        outing_id -> Text,
        user_id -> Text,
    }
}

diesel::table! {
    checkins (id) {
        id -> Text,
        outing_id -> Text,
        user_id -> Text,
        lat -> Nullable<Double>,
        lon -> Nullable<Double>,
        accuracy_m -> Nullable<Double>,
        battery_pct -> Nullable<Integer>,
        kind -> Text,
        source -> Text,
        recorded_at -> BigInt,
        received_at -> BigInt,
        inside_area -> Nullable<Bool>,
        client_id -> Nullable<Text>,
        location_purged_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    idempotency_keys (user_id, idem_key) {
        user_id -> Text,
        idem_key -> Text,
        request_hash -> Text,
        response_status -> Integer,
        response_body -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    alerts (id) {
        id -> Text,
        outing_id -> Text,
        org_id -> Text,
        canvasser_id -> Text,
        kind -> Text,
        level -> Integer,
        status -> Text,
        policy -> Text,
        opened_at -> BigInt,
        escalated_at -> Nullable<BigInt>,
        acknowledged_at -> Nullable<BigInt>,
        acknowledged_by -> Nullable<Text>,
        resolved_at -> Nullable<BigInt>,
        resolved_by -> Nullable<Text>,
        resolution -> Nullable<Text>,
        note -> Nullable<Text>,
        last_lat -> Nullable<Double>,
        last_lon -> Nullable<Double>,
        last_accuracy_m -> Nullable<Double>,
        last_recorded_at -> Nullable<BigInt>,
        repeats_sent -> Integer,
        ack_timeouts -> Integer,
        last_pushed_at -> Nullable<BigInt>,
        next_action_at -> Nullable<BigInt>,
        claimed_by -> Nullable<Text>,
        claimed_until -> Nullable<BigInt>,
        updated_at -> BigInt,
        reason -> Nullable<Text>,
        ack_code -> Nullable<Text>,
    }
}

diesel::table! {
    notifications (id) {
        id -> Text,
        dedupe_key -> Text,
        alert_id -> Nullable<Text>,
        outing_id -> Nullable<Text>,
        recipient_id -> Nullable<Text>,
        channel -> Text,
        step -> Text,
        message_type -> Text,
        level -> Integer,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        due_at -> Nullable<BigInt>,
        created_at -> BigInt,
        next_attempt_at -> BigInt,
        expires_at -> BigInt,
        sent_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        claimed_by -> Nullable<Text>,
        claimed_until -> Nullable<BigInt>,
        provider_sid -> Nullable<Text>,
    }
}

diesel::table! {
    push_deliveries (id) {
        id -> Text,
        notification_id -> Text,
        subscription_id -> Text,
        status -> Text,
        attempts -> Integer,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    outing_events (id) {
        id -> Text,
        outing_id -> Text,
        kind -> Text,
        at -> BigInt,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        at -> BigInt,
        actor_id -> Text,
        actor_role -> Text,
        action -> Text,
        subject_id -> Nullable<Text>,
        org_id -> Nullable<Text>,
        outing_id -> Nullable<Text>,
        alert_id -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    alert_events (seq) {
        seq -> BigInt,
        alert_id -> Text,
        org_id -> Text,
        event -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    pin_attempts (scope) {
        scope -> Text,
        failures -> Integer,
        locked_until -> Nullable<BigInt>,
        updated_at -> BigInt,
    }
}

diesel::joinable!(users -> organisations (org_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(police_assignments -> organisations (org_id));
diesel::joinable!(police_assignments -> users (user_id));

diesel::table! {
    incidents (id) {
        id -> Text,
        org_id -> Text,
        reporter_id -> Text,
        category -> Text,
        description -> Text,
        occurred_at -> BigInt,
        reported_at -> BigInt,
        lat -> Nullable<Double>,
        lon -> Nullable<Double>,
        outing_id -> Nullable<Text>,
        share_with_police -> Bool,
        status -> Text,
        closed_at -> Nullable<BigInt>,
        hash -> Text,
    }
}

diesel::table! {
    incident_entries (id) {
        id -> Text,
        incident_id -> Text,
        seq -> Integer,
        at -> BigInt,
        author_id -> Text,
        kind -> Text,
        text -> Text,
        hash -> Text,
    }
}

diesel::table! {
    cautions (id) {
        id -> Text,
        org_id -> Text,
        lat -> Double,
        lon -> Double,
        radius_m -> Double,
        level -> Text,
        reason -> Text,
        created_by -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    caution_cells (org_id, cell, caution_id) {
        caution_id -> Text,
        org_id -> Text,
        cell -> BigInt,
    }
}

diesel::joinable!(incident_entries -> incidents (incident_id));
diesel::joinable!(caution_cells -> cautions (caution_id));

diesel::allow_tables_to_appear_in_same_query!(
    organisations,
    users,
    recovery_codes,
    police_assignments,
    sessions,
    refresh_tokens,
    login_attempts,
    push_subscriptions,
    outings,
    outing_companions,
    checkins,
    idempotency_keys,
    alerts,
    notifications,
    push_deliveries,
    outing_events,
    audit_log,
    alert_events,
    pin_attempts,
    incidents,
    incident_entries,
    cautions,
    caution_cells,
);

// Hand-off links (store/handoff.rs): queried on their own, never joined.
diesel::table! {
    handoff_links (id) {
        id -> Text,
        alert_id -> Text,
        token_hash -> Text,
        created_by -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}
