//! What a delivery row is: the channel it travels by, where it stands, and the message it
//! carries. Closed value sets, stored as their wire names (see `store::columns`).

/// Declares a closed set of values with one wire name each: `as_str`, `parse`, `ALL`, serde
/// by the same names, and a text column in storage.
/// The names are `tt`, not `literal`: a `literal` fragment reaches derive macros wrapped in an
/// invisible group, and utoipa then ignored the `serde(rename)`, documenting the variant
/// names (`NoSubscription`) instead of what is sent (`no_subscription`).
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:tt,)+ }) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum!(
    /// How a delivery travels.
    Channel {
        Webpush => "webpush",
        Email => "email",
        Webhook => "webhook",
        Sms => "sms",
        Voice => "voice",
    }
);

wire_enum!(
    /// Where a delivery stands.
    DeliveryStatus {
        /// Not yet delivered: waiting for its first attempt or a retry.
        Pending => "pending",
        Sent => "sent",
        /// Permanently refused, or expired before delivery.
        Failed => "failed",
        /// The recipient had no device to push to.
        NoSubscription => "no_subscription",
    }
);

impl DeliveryStatus {
    pub fn is_final(self) -> bool {
        self != DeliveryStatus::Pending
    }
}

wire_enum!(
    /// The `type` of a push message (and of a webhook or email about the same event).
    MessageType {
        CheckinReminder => "checkin_reminder",
        MissedCheckin => "missed_checkin",
        Escalation => "escalation",
        Panic => "panic",
        Duress => "duress",
        WrongPins => "wrong_pins",
        NeedHelp => "need_help",
        AllClear => "all_clear",
        LeftArea => "left_area",
        LowBattery => "low_battery",
        Incident => "incident",
        Caution => "caution",
        /// "Are you OK?": the canvasser's phone offers "I'm OK" and "I need help".
        WelfareCheck => "welfare_check",
        Test => "test",
    }
);

impl MessageType {
    /// Routine notices (a reminder, a test, the organisers' `left_area` and `low_battery`):
    /// pushed at normal urgency and never by email or webhook, even about an alert's outing.
    pub fn is_routine(self) -> bool {
        matches!(
            self,
            MessageType::CheckinReminder
                | MessageType::Test
                | MessageType::LeftArea
                | MessageType::LowBattery
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(*c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for m in MessageType::ALL {
            assert_eq!(MessageType::parse(m.as_str()), Some(*m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        assert_eq!(Channel::parse("sms "), None);
    }

    #[test]
    fn only_pending_is_not_final() {
        assert!(!DeliveryStatus::Pending.is_final());
        assert!(DeliveryStatus::Sent.is_final());
        assert!(DeliveryStatus::NoSubscription.is_final());
    }
}
