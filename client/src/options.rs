//! Options of a create: mode, ACL and TTL.

use std::time::Duration;

use corral_proto::{Acl, CreateMode, CreateRequest, CreateTtlRequest, Request, MAX_TTL_MS};

use crate::Error;

/// How to create a node: its [`CreateMode`], its ACL (default: open to everyone) and, for
/// the TTL modes, its time to live.
///
/// ```
/// use std::time::Duration;
/// use corral_client::{Acl, CreateMode, CreateOptions};
/// let ephemeral = CreateOptions::new(CreateMode::EphemeralSequential);
/// let ttl = CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl(Duration::from_secs(60));
/// let private = CreateOptions::persistent().with_acl(Acl::creator_all());
/// # let _ = (ephemeral, ttl, private);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    mode: CreateMode,
    acl: Vec<Acl>,
    ttl: Option<Duration>,
}

impl CreateOptions {
    /// Options for `mode` with an open ACL (`world:anyone`, all permissions) and no TTL.
    pub fn new(mode: CreateMode) -> Self {
        CreateOptions {
            mode,
            acl: Acl::open_unsafe(),
            ttl: None,
        }
    }

    /// A persistent node with an open ACL.
    pub fn persistent() -> Self {
        CreateOptions::new(CreateMode::Persistent)
    }

    /// An ephemeral node with an open ACL.
    pub fn ephemeral() -> Self {
        CreateOptions::new(CreateMode::Ephemeral)
    }

    /// Sets the ACL.
    pub fn with_acl(mut self, acl: Vec<Acl>) -> Self {
        self.acl = acl;
        self
    }

    /// Sets the time to live, required by (and only allowed with) the TTL modes.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The mode.
    pub fn mode(&self) -> CreateMode {
        self.mode
    }

    /// Builds the create request for `server_path`, choosing the opcode as ZooKeeper's Java
    /// client does when a Stat is wanted: create2 (15), createContainer (19) or
    /// createTTL (21).
    pub(crate) fn request(&self, server_path: String, data: &[u8]) -> Result<Request, Error> {
        let data = Some(data.to_vec());
        let acl = self.acl.clone();
        let flags = self.mode.flags();
        match (self.mode.is_ttl(), self.ttl) {
            (true, None) => Err(Error::bad_arguments("a TTL mode needs with_ttl")),
            (false, Some(_)) => Err(Error::bad_arguments(
                "a TTL is only allowed with a TTL mode",
            )),
            (true, Some(ttl)) => {
                let ttl = ttl.as_millis();
                if ttl == 0 || ttl > MAX_TTL_MS as u128 {
                    return Err(Error::bad_arguments(format!(
                        "TTL must be between 1 ms and {MAX_TTL_MS} ms"
                    )));
                }
                Ok(Request::CreateTtl(CreateTtlRequest {
                    path: server_path,
                    data,
                    acl,
                    flags,
                    ttl: ttl as i64,
                }))
            }
            (false, None) => {
                let req = CreateRequest {
                    path: server_path,
                    data,
                    acl,
                    flags,
                };
                Ok(if self.mode.is_container() {
                    Request::CreateContainer(req)
                } else {
                    Request::Create2(req)
                })
            }
        }
    }
}

impl From<CreateMode> for CreateOptions {
    fn from(mode: CreateMode) -> Self {
        CreateOptions::new(mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::OpCode;

    #[test]
    fn opcode_follows_the_mode() {
        let op = |o: CreateOptions| o.request("/a".into(), b"").unwrap().op();
        assert_eq!(op(CreateOptions::persistent()), OpCode::Create2);
        assert_eq!(op(CreateMode::EphemeralSequential.into()), OpCode::Create2);
        assert_eq!(op(CreateMode::Container.into()), OpCode::CreateContainer);
        let ttl = CreateOptions::new(CreateMode::PersistentSequentialWithTtl)
            .with_ttl(Duration::from_secs(1));
        assert_eq!(op(ttl), OpCode::CreateTtl);
    }

    #[test]
    fn ttl_must_match_the_mode() {
        let no_ttl = CreateOptions::new(CreateMode::PersistentWithTtl);
        assert!(matches!(
            no_ttl.request("/a".into(), b""),
            Err(Error::BadArguments(_))
        ));
        let stray = CreateOptions::persistent().with_ttl(Duration::from_secs(1));
        assert!(matches!(
            stray.request("/a".into(), b""),
            Err(Error::BadArguments(_))
        ));
        let zero = CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl(Duration::ZERO);
        assert!(matches!(
            zero.request("/a".into(), b""),
            Err(Error::BadArguments(_))
        ));
    }
}
