//! `CliError`: what a failed command prints and the exit code it leaves.

use std::fmt;

use corral_client::Error;

/// A failed shell command, as zkCli's `CliException`: one message line for standard error
/// and the process exit code it leaves (1, or 127 for an unknown command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The line printed to standard error.
    pub message: String,
    /// The exit code the shell reports if this was the last command.
    pub exit_code: i32,
}

impl CliError {
    /// A failure with exit code 1.
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            exit_code: 1,
        }
    }

    /// zkCli's `CommandNotFoundException` (exit code 127). zkCli words it
    /// `Command not found: Command not found <cmd>`; so do we.
    pub fn command_not_found(cmd: &str) -> Self {
        CliError {
            message: format!("Command not found: Command not found {cmd}"),
            exit_code: 127,
        }
    }

    /// zkCli's `CliWrapperException` around a `KeeperException` for `path`: its friendly
    /// message for the common codes, else `KeeperErrorCode = <code> for <path>`.
    ///
    /// `path` is `None` for the errors Java's client raises before sending (an empty ACL),
    /// which it reports with the path `null`.
    pub fn keeper(err: &Error, path: Option<&str>) -> Self {
        let p = path.unwrap_or("null");
        let message = match err {
            Error::NoNode => format!("Node does not exist: {p}"),
            Error::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {p}"),
            Error::NodeExists => format!("Node already exists: {p}"),
            Error::NotEmpty => format!("Node not empty: {p}"),
            Error::NotReadOnly => format!("Not a read-only call: {p}"),
            Error::InvalidAcl => format!("Acl is not valid : {p}"),
            Error::NoAuth => format!("Insufficient permission : {p}"),
            Error::BadArguments(_) => format!("Arguments are not valid : {p}"),
            Error::BadVersion => format!("version No is not valid : {p}"),
            Error::ReconfigInProgress => {
                "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
                    .to_owned()
            }
            Error::NewConfigNoQuorum => "No quorum of new config is connected and up-to-date \
                 with the leader of last commmitted config - try invoking reconfiguration after \
                 new servers are connected and synced"
                .to_owned(),
            Error::QuotaExceeded => format!("Quota has exceeded : {p}"),
            other => keeper_message(other, path),
        };
        CliError::new(message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Java's `KeeperException.getMessage()`: `KeeperErrorCode = <code message>[ for <path>]`.
pub fn keeper_message(err: &Error, path: Option<&str>) -> String {
    let code = code_message(err);
    match path {
        Some(p) if !p.is_empty() => format!("KeeperErrorCode = {code} for {p}"),
        _ => format!("KeeperErrorCode = {code}"),
    }
}

/// Java's `KeeperException.getCodeMessage`, extended to the client's own conditions.
fn code_message(err: &Error) -> String {
    match err {
        Error::SystemError => "SystemError".into(),
        Error::RuntimeInconsistency => "RuntimeInconsistency".into(),
        Error::DataInconsistency => "DataInconsistency".into(),
        Error::ConnectionLoss | Error::Timeout => "ConnectionLoss".into(),
        Error::MarshallingError => "MarshallingError".into(),
        Error::NewConfigNoQuorum => "NewConfigNoQuorum".into(),
        Error::ReconfigInProgress => "ReconfigInProgress".into(),
        Error::Unimplemented => "Unimplemented".into(),
        Error::OperationTimeout => "OperationTimeout".into(),
        Error::BadArguments(_) => "BadArguments".into(),
        Error::ApiError => "APIError".into(),
        Error::NoNode => "NoNode".into(),
        Error::NoAuth => "NoAuth".into(),
        Error::BadVersion => "BadVersion".into(),
        Error::NoChildrenForEphemerals => "NoChildrenForEphemerals".into(),
        Error::NodeExists => "NodeExists".into(),
        Error::InvalidAcl => "InvalidACL".into(),
        Error::AuthFailed => "AuthFailed".into(),
        Error::NotEmpty => "Directory not empty".into(),
        Error::SessionExpired => "Session expired".into(),
        Error::InvalidCallback => "Invalid callback".into(),
        Error::SessionMoved => "Session moved".into(),
        Error::NotReadOnly => "Not a read-only call".into(),
        Error::EphemeralOnLocalSession => "Ephemeral node on local session".into(),
        Error::NoWatcher => "No such watcher".into(),
        Error::ReconfigDisabled => "Reconfig is disabled".into(),
        Error::SessionClosedRequireSaslAuth => {
            "Session closed because client failed to authenticate".into()
        }
        Error::QuotaExceeded => "Quota has exceeded".into(),
        Error::ThrottledOp => "Op throttled due to high load".into(),
        Error::MultiFailed { source, .. } => code_message(source),
        // Conditions Java's client has no code for: say what happened.
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_messages_name_the_path() {
        assert_eq!(
            CliError::keeper(&Error::NoNode, Some("/a")).message,
            "Node does not exist: /a"
        );
        assert_eq!(
            CliError::keeper(&Error::InvalidAcl, None).message,
            "Acl is not valid : null"
        );
        assert_eq!(
            CliError::keeper(&Error::NoWatcher, Some("/w")).message,
            "KeeperErrorCode = No such watcher for /w"
        );
        assert_eq!(
            keeper_message(&Error::InvalidAcl, None),
            "KeeperErrorCode = InvalidACL"
        );
    }

    #[test]
    fn unknown_commands_exit_127() {
        let e = CliError::command_not_found("foo");
        assert_eq!(e.exit_code, 127);
        assert_eq!(e.message, "Command not found: Command not found foo");
    }
}
