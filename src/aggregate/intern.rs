//! Shared text of the aggregator's state. 100,000 clusters × 5 errors repeat the same few node
//! ids, comments, messages and attribute sets over and over; each is held once here and shared
//! by reference count, so an error costs a pointer per text field instead of an allocation.
//!
//! The interner only ever hands out `Arc`s: a state stays self-contained (clonable,
//! serializable) without it. Text no state refers to any more is swept out now and then.

use rustc_hash::FxBuildHasher;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Text shared between errors and clusters.
pub type Sym = Arc<str>;

/// Attributes of an error, sorted by name; `None` when there are none.
pub type Attrs = Option<Arc<[(Sym, Sym)]>>;

/// The set of shared texts and attribute sets of one aggregator.
#[derive(Debug, Default)]
pub struct Interner {
    /// Off: every text gets its own allocation (a [`super::ClusterState`] used on its own).
    enabled: bool,
    strs: HashSet<Sym, FxBuildHasher>,
    attrs: HashSet<Arc<[(Sym, Sym)]>, FxBuildHasher>,
    /// Reused to look an attribute set up without allocating.
    scratch: Vec<(Sym, Sym)>,
    /// Entries after the last sweep; the next one runs when the sets have doubled since.
    swept_len: usize,
}

impl Interner {
    /// An interner that shares text.
    pub fn new() -> Self {
        Interner {
            enabled: true,
            ..Interner::default()
        }
    }

    /// An interner that shares nothing (for a state used outside an aggregator).
    pub fn disabled() -> Self {
        Interner::default()
    }

    /// The shared copy of `s`.
    pub fn str(&mut self, s: &str) -> Sym {
        if !self.enabled {
            return Sym::from(s);
        }
        if let Some(sym) = self.strs.get(s) {
            return Arc::clone(sym);
        }
        let sym = Sym::from(s);
        self.strs.insert(Arc::clone(&sym));
        self.maybe_sweep();
        sym
    }

    /// The shared copy of `sym`'s text (for states decoded from the changelog).
    pub fn share(&mut self, sym: &Sym) -> Sym {
        if !self.enabled {
            return Arc::clone(sym);
        }
        if let Some(shared) = self.strs.get(&**sym) {
            return Arc::clone(shared);
        }
        self.strs.insert(Arc::clone(sym));
        self.maybe_sweep();
        Arc::clone(sym)
    }

    /// The shared attribute set equal to `attrs`.
    pub fn attrs(&mut self, attrs: &BTreeMap<String, String>) -> Attrs {
        if attrs.is_empty() {
            return None;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend(attrs.iter().map(|(k, v)| (self.str(k), self.str(v))));
        let out = self.attr_set(&scratch);
        scratch.clear();
        self.scratch = scratch;
        Some(out)
    }

    /// The shared copy of an attribute set (for states decoded from the changelog).
    pub fn share_attrs(&mut self, attrs: &Attrs) -> Attrs {
        let set = attrs.as_ref()?;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend(set.iter().map(|(k, v)| (self.share(k), self.share(v))));
        let out = self.attr_set(&scratch);
        scratch.clear();
        self.scratch = scratch;
        Some(out)
    }

    fn attr_set(&mut self, pairs: &[(Sym, Sym)]) -> Arc<[(Sym, Sym)]> {
        if !self.enabled {
            return Arc::from(pairs);
        }
        if let Some(set) = self.attrs.get(pairs) {
            return Arc::clone(set);
        }
        let set: Arc<[(Sym, Sym)]> = Arc::from(pairs);
        self.attrs.insert(Arc::clone(&set));
        self.maybe_sweep();
        set
    }

    /// Texts and attribute sets held.
    fn len(&self) -> usize {
        self.strs.len() + self.attrs.len()
    }

    /// Drops what only the interner still refers to, once the sets have doubled since the last
    /// sweep: amortized O(1) per insertion, memory bounded by twice what the states use.
    fn maybe_sweep(&mut self) {
        if self.len() < 2 * self.swept_len + 1024 {
            return;
        }
        self.sweep();
    }

    /// Drops every text and attribute set that no state refers to.
    pub fn sweep(&mut self) {
        // Attribute sets first: they hold references to texts.
        self.attrs.retain(|a| Arc::strong_count(a) > 1);
        self.strs.retain(|s| Arc::strong_count(s) > 1);
        self.swept_len = self.len();
    }
}

/// Whether an event's attributes equal a stored set.
pub fn attrs_eq(stored: &Attrs, event: &BTreeMap<String, String>) -> bool {
    match stored {
        None => event.is_empty(),
        Some(set) => {
            set.len() == event.len()
                && set
                    .iter()
                    .zip(event)
                    .all(|((k, v), (ek, ev))| **k == **ek && **v == **ev)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_one_allocation_and_unused_ones_are_swept() {
        let mut i = Interner::new();
        let a = i.str("node-1");
        let b = i.str("node-1");
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        i.str("other");
        i.sweep();
        assert_eq!(i.len(), 0);
    }

    #[test]
    fn equal_attribute_sets_are_shared() {
        let mut i = Interner::new();
        let m: BTreeMap<String, String> = [("free_bytes".into(), "10".into())].into();
        let a = i.attrs(&m);
        let b = i.attrs(&m);
        assert!(Arc::ptr_eq(a.as_ref().unwrap(), b.as_ref().unwrap()));
        assert!(attrs_eq(&a, &m));
        assert!(!attrs_eq(&a, &BTreeMap::new()));
        assert_eq!(i.attrs(&BTreeMap::new()), None);
    }

    #[test]
    fn a_disabled_interner_shares_nothing() {
        let mut i = Interner::disabled();
        let a = i.str("x");
        let b = i.str("x");
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(i.len(), 0);
    }
}
