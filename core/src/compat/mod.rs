//! Schema compatibility: whether a new schema version may follow the earlier ones under a pair's
//! compatibility mode (API.md, "Schema versions and compatibility").
//!
//! Everything rests on one primitive, [`inclusion`]: is every document valid under one schema
//! also valid under another, *as the gateway's validator decides validity* (`jsonschema` 0.61
//! with the draft taken from `$schema`, default 2020-12)? The answer is **sound**: "compatible"
//! (no incompatibility) only when the inclusion is proven. Where the checker cannot prove it — a
//! keyword or combination it does not analyse, a `$ref` it cannot resolve, a schema past its
//! depth or work budget — it reports an incompatibility of kind [`Kind::Unproven`] naming the
//! keyword, never the other way round.
//!
//! What is analysed: `type`, `enum`, `const`, numeric bounds and `multipleOf`, string length,
//! `pattern` and `format` (by identity), array bounds, `items`/`prefixItems`/`additionalItems`,
//! `uniqueItems`, `contains`, object bounds, `required`, `properties`/`patternProperties`/
//! `additionalProperties`, `propertyNames`, dependencies, boolean schemas and in-document `$ref`
//! (recursion included), each read with its own document's draft. `allOf`, `anyOf`, `oneOf`,
//! `not` and `if` are analysed where a sufficient condition holds (e.g. the new `anyOf` has a
//! branch containing the old schema) and are `unproven` otherwise; unchanged subschemas are
//! recognised as such when their references resolve to unchanged targets too.

mod draft;
mod eval;
mod num;
mod path;
mod prove;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// At most this many incompatibilities are reported for one check (API.md).
pub const MAX_INCOMPATIBILITIES: usize = 50;

/// Longest message, in characters: messages may name property names and values, which a hostile
/// schema could make arbitrarily long.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// A pair's compatibility mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Any new version is accepted.
    None,
    /// valid(latest) ⊆ valid(new): every event accepted so far is still accepted.
    #[default]
    Backward,
    /// valid(new) ⊆ valid(latest): consumers of the latest version can read every new event.
    Forward,
    /// Both.
    Full,
    /// [`Mode::Backward`] against every earlier version.
    BackwardTransitive,
    /// [`Mode::Forward`] against every earlier version.
    ForwardTransitive,
    /// [`Mode::Full`] against every earlier version.
    FullTransitive,
}

impl Mode {
    pub const ALL: [Mode; 7] = [
        Mode::None,
        Mode::Backward,
        Mode::Forward,
        Mode::Full,
        Mode::BackwardTransitive,
        Mode::ForwardTransitive,
        Mode::FullTransitive,
    ];

    /// The wire name, e.g. `"FULL_TRANSITIVE"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::None => "NONE",
            Mode::Backward => "BACKWARD",
            Mode::Forward => "FORWARD",
            Mode::Full => "FULL",
            Mode::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Mode::ForwardTransitive => "FORWARD_TRANSITIVE",
            Mode::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    const fn backward(self) -> bool {
        matches!(
            self,
            Mode::Backward | Mode::Full | Mode::BackwardTransitive | Mode::FullTransitive
        )
    }

    const fn forward(self) -> bool {
        matches!(
            self,
            Mode::Forward | Mode::Full | Mode::ForwardTransitive | Mode::FullTransitive
        )
    }

    const fn transitive(self) -> bool {
        matches!(
            self,
            Mode::BackwardTransitive | Mode::ForwardTransitive | Mode::FullTransitive
        )
    }
}

/// A compatibility mode name that is not one of API.md's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown compatibility mode {0:?}: expected NONE, BACKWARD, FORWARD, FULL, \
     BACKWARD_TRANSITIVE, FORWARD_TRANSITIVE or FULL_TRANSITIVE"
)]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| UnknownMode(s.chars().take(64).collect()))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// What kind of change makes the new schema incompatible, in the direction being checked: the
/// `*_added`/`*_narrowed`/`*_tightened` kinds appear when the new schema rejects documents the
/// earlier one accepted (BACKWARD), the `*_removed`/`*_widened`/`*_loosened` kinds when it accepts
/// documents the earlier one rejected (FORWARD). Serialized as the snake_case ids below; the list
/// is stable (new kinds may be added, none renamed).
///
/// - `type_narrowed` — the new schema rejects a JSON type the earlier accepted here (including a
///   subschema that became `false`, and draft 4's stricter `integer`).
/// - `type_widened` — the new schema accepts a JSON type the earlier rejected here.
/// - `enum_narrowed` — the new `enum` lacks a value the earlier schema accepted (or an `enum` was
///   added).
/// - `enum_widened` — the new schema accepts a value outside the earlier `enum` (or the `enum`
///   was removed or extended).
/// - `const_changed` — a `const` was added, removed or changed so that some value is accepted by
///   one side only.
/// - `required_added` — the new schema requires a property the earlier did not.
/// - `required_removed` — the new schema no longer requires a property the earlier required.
/// - `property_added_to_open_model` — the new schema constrains a property the earlier open
///   model left free: earlier documents may carry it with any value.
/// - `property_removed_from_open_model` — the new schema no longer declares a property the earlier
///   constrained, and its open model now accepts any value there.
/// - `closed_content_model` — one side forbids properties (`additionalProperties: false`, a
///   `false` property, constrained `additionalProperties`) that the other accepts.
/// - `bound_tightened` — a numeric, length, item-count or property-count bound, or `multipleOf`,
///   rejects values the earlier schema accepted.
/// - `bound_loosened` — such a bound now accepts values the earlier schema rejected.
/// - `pattern_changed` — a `pattern` was added, removed or changed on the side that must hold.
/// - `format_changed` — an asserted `format` (drafts 4–7), or a `contentMediaType`/
///   `contentEncoding` (drafts 6–7), was added, removed or changed.
/// - `items_changed` — the array shape forbids item positions (`items: false`,
///   `additionalItems: false`, a shorter tuple) the other side allows.
/// - `unique_items_added` — the new schema requires unique items, the earlier did not.
/// - `unique_items_removed` — the new schema no longer requires unique items.
/// - `dependency_added` — the new schema adds a dependent requirement (`dependentRequired`,
///   array-form `dependencies`).
/// - `dependency_removed` — the new schema drops one the earlier had.
/// - `unproven` — the checker cannot prove the inclusion: a keyword or combination it does not
///   analyse (named in the message), an unresolvable or remote `$ref`, an unknown `$schema`, or a
///   schema beyond the depth or work budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    TypeNarrowed,
    TypeWidened,
    EnumNarrowed,
    EnumWidened,
    ConstChanged,
    RequiredAdded,
    RequiredRemoved,
    PropertyAddedToOpenModel,
    PropertyRemovedFromOpenModel,
    ClosedContentModel,
    BoundTightened,
    BoundLoosened,
    PatternChanged,
    FormatChanged,
    ItemsChanged,
    UniqueItemsAdded,
    UniqueItemsRemoved,
    DependencyAdded,
    DependencyRemoved,
    Unproven,
}

impl Kind {
    pub const ALL: [Kind; 20] = [
        Kind::TypeNarrowed,
        Kind::TypeWidened,
        Kind::EnumNarrowed,
        Kind::EnumWidened,
        Kind::ConstChanged,
        Kind::RequiredAdded,
        Kind::RequiredRemoved,
        Kind::PropertyAddedToOpenModel,
        Kind::PropertyRemovedFromOpenModel,
        Kind::ClosedContentModel,
        Kind::BoundTightened,
        Kind::BoundLoosened,
        Kind::PatternChanged,
        Kind::FormatChanged,
        Kind::ItemsChanged,
        Kind::UniqueItemsAdded,
        Kind::UniqueItemsRemoved,
        Kind::DependencyAdded,
        Kind::DependencyRemoved,
        Kind::Unproven,
    ];

    /// The stable id, as serialized.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::TypeNarrowed => "type_narrowed",
            Kind::TypeWidened => "type_widened",
            Kind::EnumNarrowed => "enum_narrowed",
            Kind::EnumWidened => "enum_widened",
            Kind::ConstChanged => "const_changed",
            Kind::RequiredAdded => "required_added",
            Kind::RequiredRemoved => "required_removed",
            Kind::PropertyAddedToOpenModel => "property_added_to_open_model",
            Kind::PropertyRemovedFromOpenModel => "property_removed_from_open_model",
            Kind::ClosedContentModel => "closed_content_model",
            Kind::BoundTightened => "bound_tightened",
            Kind::BoundLoosened => "bound_loosened",
            Kind::PatternChanged => "pattern_changed",
            Kind::FormatChanged => "format_changed",
            Kind::ItemsChanged => "items_changed",
            Kind::UniqueItemsAdded => "unique_items_added",
            Kind::UniqueItemsRemoved => "unique_items_removed",
            Kind::DependencyAdded => "dependency_added",
            Kind::DependencyRemoved => "dependency_removed",
            Kind::Unproven => "unproven",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason why a new schema may not follow an earlier version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incompatibility {
    /// The earlier version the new schema is incompatible with.
    pub version: u32,
    /// JSON Pointer (RFC 6901) into the *new* schema, to the keyword or subschema concerned (it
    /// may name a keyword the new schema dropped, at the place it used to be).
    pub path: String,
    pub kind: Kind,
    /// One human sentence, at most [`MAX_MESSAGE_CHARS`] characters.
    pub message: String,
}

/// Which argument of [`inclusion`] is the new schema: paths point into it, and kinds describe the
/// change from the other one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The new schema is `smaller` (a FORWARD check).
    Smaller,
    /// The new schema is `larger` (a BACKWARD check).
    Larger,
}

/// The primitive: is valid(`smaller`) ⊆ valid(`larger`)? Empty = proven. Otherwise the reasons it
/// could not be proven (at most [`MAX_INCOMPATIBILITIES`]), with `version` 0: [`check`] fills it.
///
/// Never panics and never recurses past a fixed depth, whatever the input; a schema past the
/// depth or work budget is answered with [`Kind::Unproven`].
pub fn inclusion(smaller: &Value, larger: &Value, new: Side) -> Vec<Incompatibility> {
    prove::run(smaller, larger, new)
        .into_iter()
        .map(|finding| Incompatibility {
            version: 0,
            path: finding.path,
            kind: finding.kind,
            message: capped(finding.message),
        })
        .collect()
}

/// Incompatibilities of `new` against `history` (earlier versions, ascending by version, latest
/// last) under `mode`; empty = compatible. Non-transitive modes check only the latest version,
/// transitive ones every version. At most [`MAX_INCOMPATIBILITIES`] entries, earliest version
/// first; with no history everything is compatible.
pub fn check(mode: Mode, new: &Value, history: &[(u32, &Value)]) -> Vec<Incompatibility> {
    let against: &[(u32, &Value)] = match (mode, history) {
        (Mode::None, _) | (_, []) => return Vec::new(),
        (mode, all) if mode.transitive() => all,
        (_, [.., latest]) => std::slice::from_ref(latest),
    };
    let mut out: Vec<Incompatibility> = Vec::new();
    for &(version, earlier) in against {
        let mut findings = Vec::new();
        if mode.backward() {
            findings.extend(inclusion(earlier, new, Side::Larger));
        }
        if mode.forward() {
            findings.extend(inclusion(new, earlier, Side::Smaller));
        }
        for mut finding in findings {
            finding.version = version;
            if !out.contains(&finding) {
                out.push(finding);
            }
            if out.len() == MAX_INCOMPATIBILITIES {
                return out;
            }
        }
    }
    out
}

fn capped(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS - 1) {
        message.truncate(cut);
        message.push('…');
    }
    message
}
