//! What a walk does with the keys of the objects it passes: nothing ([`Ignore`], every walk's
//! default), or refuse a key that repeats one of its object's ([`Unique`], for the validator,
//! which then needs no second read of a body to find repeated keys).

use std::collections::HashSet;

use smallvec::SmallVec;

/// Told of every object a walk opens and closes and of every key in between, in text order.
pub(crate) trait Keys<'t> {
    /// An object opens.
    fn open(&mut self);
    /// A key of the innermost open object, as written between its quotes: `false` ends the walk.
    fn key(&mut self, key: &'t [u8]) -> bool;
    /// The innermost open object closes.
    fn close(&mut self);
}

/// Keys are not looked at.
pub(crate) struct Ignore;

impl Keys<'_> for Ignore {
    #[inline(always)]
    fn open(&mut self) {}
    #[inline(always)]
    fn key(&mut self, _: &[u8]) -> bool {
        true
    }
    #[inline(always)]
    fn close(&mut self) {}
}

/// A key that repeats one of its object's ends the walk. Keys are compared as written, which
/// is what they mean only in text without escapes (`"\u0061"` and `"a"` are one key): callers
/// walk such text only.
#[derive(Default)]
pub(crate) struct Unique<'t> {
    /// The keys of every open object held in `keys` (an object with many keys moves its own to
    /// a set), innermost last.
    keys: SmallVec<[&'t [u8]; 32]>,
    levels: SmallVec<[Level<'t>; 8]>,
}

/// One open object.
struct Level<'t> {
    /// Where its keys start in [`Unique::keys`].
    start: usize,
    /// Its keys, once there are more than [`Unique::SMALL`] (compared one by one before).
    seen: Option<HashSet<&'t [u8]>>,
}

impl Unique<'_> {
    const SMALL: usize = 16;
}

impl<'t> Keys<'t> for Unique<'t> {
    fn open(&mut self) {
        self.levels.push(Level {
            start: self.keys.len(),
            seen: None,
        });
    }

    fn key(&mut self, key: &'t [u8]) -> bool {
        let Some(level) = self.levels.last_mut() else {
            return true;
        };
        if let Some(seen) = &mut level.seen {
            return seen.insert(key);
        }
        let mine = &self.keys[level.start..];
        if mine.contains(&key) {
            return false;
        }
        if mine.len() < Self::SMALL {
            self.keys.push(key);
        } else {
            let mut seen: HashSet<&[u8]> = mine.iter().copied().collect();
            seen.insert(key);
            level.seen = Some(seen);
            self.keys.truncate(level.start);
        }
        true
    }

    fn close(&mut self) {
        if let Some(level) = self.levels.pop() {
            self.keys.truncate(level.start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `events` ('{' opens, '}' closes, anything else is a key) and returns where the
    /// first refused key was, if any.
    fn refused(events: &[&'static str]) -> Option<usize> {
        let mut u = Unique::default();
        for (i, e) in events.iter().enumerate() {
            match *e {
                "{" => u.open(),
                "}" => u.close(),
                k => {
                    if !u.key(k.as_bytes()) {
                        return Some(i);
                    }
                }
            }
        }
        None
    }

    #[test]
    fn a_key_repeated_in_its_own_object_is_refused_and_in_another_is_not() {
        assert_eq!(refused(&["{", "a", "b", "a"]), Some(3));
        assert_eq!(refused(&["{", "a", "{", "a", "}", "b", "}"]), None);
        assert_eq!(refused(&["{", "a", "{", "b", "}", "b", "}"]), None);
        assert_eq!(refused(&["{", "a", "{", "b", "}", "a", "}"]), Some(5));
        assert_eq!(refused(&["{", "x", "}", "{", "x", "}"]), None);
    }

    #[test]
    fn large_objects_move_to_a_set_and_keep_their_keys() {
        let keys: Vec<&'static str> = (0..40)
            .map(|i| &*Box::leak(format!("k{i}").into_boxed_str()))
            .collect();
        let mut events = vec!["{"];
        events.extend(&keys);
        assert_eq!(refused(&events), None);
        for (at, again) in [(0, "k0"), (16, "k16"), (39, "k39")] {
            let mut repeated = events.clone();
            repeated.push(again);
            assert_eq!(refused(&repeated), Some(events.len()), "{at}");
        }
        // An inner object with many keys, closed: the outer object's keys are still its own.
        let mut nested = vec!["{", "k0", "{"];
        nested.extend(&keys);
        nested.extend(["}", "k1", "k0"]);
        assert_eq!(refused(&nested), Some(nested.len() - 1));
    }
}
