//! The authenticated actor: who is asking, in which role and organisation, on which login.
//! Built by the HTTP layer from a verified token of a live login; used by the use cases.

use super::account::Role;
use super::ids::{OrgId, SessionId, UserId};

/// The authenticated caller, from a valid access token of a live login.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: UserId,
    pub role: Role,
    pub org_id: Option<OrgId>,
    pub display_name: String,
    pub email: String,
    /// The login this request belongs to.
    pub session_id: SessionId,
}
