//! Plain data that both ARI's rules ([`crate::ari_auth`]) and the host layer
//! (`crate::host`, which reads requests and compiles ACLs) speak: defined
//! here, below both, so the host layer imports none of the module's logic.

/// HTTP methods as Asterisk's HTTP server names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Head,
    Put,
    Delete,
    Options,
    /// Anything Asterisk did not recognise.
    Unknown,
}

/// A user name and password as the client sent them (bytes: they are
/// compared byte for byte, as ARI's `strcmp` does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: Vec<u8>,
    pub password: Vec<u8>,
}

/// Why the request body could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    /// Out of memory reading a form body (`form`) or a JSON body.
    OutOfMemory {
        form: bool,
    },
    /// Not parseable (bad chunking, invalid JSON).
    Malformed,
}

/// One `permit=`, `deny=` or `acl=` line of a user, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclRule {
    /// `permit`, `deny` or `acl` (a named ACL from acl.conf), as written.
    pub sense: String,
    pub value: String,
}
