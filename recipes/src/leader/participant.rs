//! Participants of a leadership recipe, as Curator's `Participant` lists them.

use corral_client::{Client, Error};

use crate::lock::common::{join, sort_contenders};
use crate::RecipeError;

/// One contender for leadership: its id (the data of its node, UTF-8) and whether it is
/// the leader (Curator's `Participant`).
///
/// ```
/// use corral_recipes::leader::Participant;
/// let p = Participant::new("worker-1", "_c_…-latch-0000000003", true);
/// assert_eq!(p.id(), "worker-1");
/// assert!(p.is_leader());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Participant {
    id: String,
    node: String,
    is_leader: bool,
}

impl Participant {
    /// A participant (for tests and comparisons; the recipes list them from the server).
    pub fn new(id: impl Into<String>, node: impl Into<String>, is_leader: bool) -> Self {
        Participant {
            id: id.into(),
            node: node.into(),
            is_leader,
        }
    }

    /// The participant's id (the data of its node, decoded as UTF-8 with replacement).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name of its node.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether it is the leader: the first node in sequence order.
    pub fn is_leader(&self) -> bool {
        self.is_leader
    }
}

/// The participants under `dir` whose node names carry `marker`, in sequence order; the
/// first that still exists when read is the leader. Nodes deleted while we read are left
/// out.
pub(crate) async fn participants(
    client: &Client,
    dir: &str,
    marker: &str,
) -> Result<Vec<Participant>, RecipeError> {
    let children = match client.get_children(dir).await {
        Err(Error::NoNode) => return Ok(Vec::new()),
        other => other?,
    };
    let sorted = sort_contenders(&children, &[marker]);
    // Send every read before awaiting any (the client pipelines them).
    let reads: Vec<_> = sorted
        .iter()
        .map(|c| client.get_data(&join(dir, &c.name)))
        .collect();
    let mut out = Vec::with_capacity(sorted.len());
    for (contender, read) in sorted.into_iter().zip(reads) {
        match read.await {
            Ok((data, _)) => {
                let is_leader = out.is_empty();
                out.push(Participant {
                    id: String::from_utf8_lossy(&data).into_owned(),
                    node: contender.name,
                    is_leader,
                });
            }
            Err(Error::NoNode) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}
