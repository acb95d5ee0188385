//! How a `Context` prints: Go's path from the root (`Display`), and a
//! `Debug` with the path, err and deadline.

use super::Context;
use crate::key;
use crate::tree::{self, NodeKind, NodeRef, Root};
use std::fmt;

impl fmt::Display for Context {
    /// Go's style: the path from the root, e.g.
    /// `context.Background.WithValue(user).WithCancel`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path = Vec::new();
        let mut cur = &self.node;
        while let Some(n) = cur.header() {
            // A shard is the engine's, not a context (tree/shared.rs).
            if !tree::is_shard(n) {
                path.push(cur);
            }
            match n.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        let root = match cur.as_root() {
            Some(Root::Todo) => "context.TODO",
            _ => "context.Background",
        };
        f.write_str(root)?;
        for n in path.iter().rev() {
            segment(n, f)?;
        }
        Ok(())
    }
}

fn segment(node: &NodeRef, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let Some(h) = node.node_ptr() else {
        return Ok(());
    };
    // SAFETY: `node` holds a handle on the node.
    match unsafe { tree::kind_of(h) } {
        NodeKind::Root => Ok(()),
        NodeKind::Cancel => f.write_str(".WithCancel"),
        NodeKind::Merge => f.write_str(".Merge"),
        NodeKind::WithoutCancel => f.write_str(".WithoutCancel"),
        NodeKind::Value => {
            // SAFETY: a value node's table is its key's.
            let name = tree::key_of(node).map(|k| unsafe { key::name_of(k) });
            write!(f, ".WithValue({})", name.unwrap_or("?"))
        }
        NodeKind::Deadline => {
            let left = node.remaining().unwrap_or_default();
            write!(f, ".WithDeadline({left:?})")
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("path", &format_args!("{self}"))
            .field("err", &self.err())
            .field("deadline", &self.deadline())
            .finish()
    }
}
