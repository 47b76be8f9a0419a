//! Operation codes of the client protocol and of the transaction log.

/// A request type (`RequestHeader.type`) or transaction type (`TxnHeader.type`).
///
/// ```
/// use corral_proto::OpCode;
/// assert_eq!(OpCode::from_i32(15), Some(OpCode::Create2));
/// assert_eq!(OpCode::Create2 as i32, 15);
/// assert_eq!(OpCode::from_i32(42), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
#[allow(missing_docs)]
pub enum OpCode {
    Notification = 0,
    Create = 1,
    Delete = 2,
    Exists = 3,
    GetData = 4,
    SetData = 5,
    GetAcl = 6,
    SetAcl = 7,
    GetChildren = 8,
    Sync = 9,
    Ping = 11,
    GetChildren2 = 12,
    Check = 13,
    Multi = 14,
    Create2 = 15,
    Reconfig = 16,
    CheckWatches = 17,
    RemoveWatches = 18,
    CreateContainer = 19,
    DeleteContainer = 20,
    CreateTtl = 21,
    MultiRead = 22,
    Auth = 100,
    SetWatches = 101,
    Sasl = 102,
    GetEphemerals = 103,
    GetAllChildrenNumber = 104,
    SetWatches2 = 105,
    AddWatch = 106,
    WhoAmI = 107,
    CreateSession = -10,
    CloseSession = -11,
    Error = -1,
}

impl OpCode {
    /// The opcode for a wire value.
    pub fn from_i32(v: i32) -> Option<Self> {
        use OpCode::*;
        Some(match v {
            0 => Notification,
            1 => Create,
            2 => Delete,
            3 => Exists,
            4 => GetData,
            5 => SetData,
            6 => GetAcl,
            7 => SetAcl,
            8 => GetChildren,
            9 => Sync,
            11 => Ping,
            12 => GetChildren2,
            13 => Check,
            14 => Multi,
            15 => Create2,
            16 => Reconfig,
            17 => CheckWatches,
            18 => RemoveWatches,
            19 => CreateContainer,
            20 => DeleteContainer,
            21 => CreateTtl,
            22 => MultiRead,
            100 => Auth,
            101 => SetWatches,
            102 => Sasl,
            103 => GetEphemerals,
            104 => GetAllChildrenNumber,
            105 => SetWatches2,
            106 => AddWatch,
            107 => WhoAmI,
            -10 => CreateSession,
            -11 => CloseSession,
            -1 => Error,
            _ => return None,
        })
    }

    /// The short name ZooKeeper's `cons` four-letter word prints as `lop`.
    pub fn short_name(self) -> &'static str {
        use OpCode::*;
        match self {
            Ping => "PING",
            CreateSession => "SESS",
            Create | Create2 | CreateContainer | CreateTtl => "CREA",
            Delete | DeleteContainer => "DELE",
            SetData => "SETD",
            GetData => "GETD",
            Exists => "EXIS",
            GetChildren | GetChildren2 => "GETC",
            GetAcl => "GETA",
            SetAcl => "SETA",
            Sync => "SYNC",
            Check => "CHEC",
            Multi => "MULT",
            MultiRead => "MLTR",
            SetWatches => "SETW",
            SetWatches2 => "STW2",
            AddWatch => "ADDW",
            RemoveWatches => "REMW",
            CheckWatches => "CHKW",
            WhoAmI => "HOMI",
            GetEphemerals => "GETE",
            GetAllChildrenNumber => "GETACN",
            Reconfig => "RECO",
            CloseSession => "CLOS",
            _ => "NA",
        }
    }

    /// Whether the request changes the tree (goes through the transaction log).
    pub fn is_write(self) -> bool {
        use OpCode::*;
        matches!(
            self,
            Create
                | Create2
                | CreateContainer
                | CreateTtl
                | Delete
                | DeleteContainer
                | SetData
                | SetAcl
                | Check
                | Multi
                | Reconfig
                | CreateSession
                | CloseSession
        )
    }
}
