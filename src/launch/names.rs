//! One mechanism for the enums whose names are greta's vocabulary ([`Stage`](super::Stage),
//! [`Variant`](super::Variant), [`Precision`](super::Precision), [`DType`](super::DType), and the
//! option values [`RouteMode`](super::RouteMode) and `record::Capture`): the
//! [`named!`](named) macro declares the enum and generates its name table, `ALL`, `name()`, `names()`,
//! `Display` and a `FromStr` whose error lists the valid names. Before, each of the four had its own
//! hand-written copy, and they had drifted (one error listed the names, another did not).
//!
//! The names are what the command line, JSON and docs use. Tape records do not depend on them (records
//! are bincode of the serde derive, i.e. the variant index, and the index stores fixed codes,
//! `tape/index.rs`), but some header text does: the header's `routes` (`precision=f32`, `matmul=gemv`)
//! and foreign launches' descriptions are written with these names, and golden manifests and scripts
//! print them. Never rename one. The serde index is positional, and the unlisted variants are declared
//! after the listed ones, so a variant added to the first list shifts `Stage::Other` /
//! `Variant::Engine`; add new ones in a `later` list instead (declared last, so nothing moves), and bump
//! the format version either way: an older reader cannot decode the new index (`tape::record`'s
//! `serde_indexes_of_stored_enums_are_pinned` pins every index).
//!
//! Syntax: attributes and `pub enum T ("what", "plural"[, ignore_case]) { Variant = "name", ... }`, then
//! optionally `unlisted { Variant = "name" => parsed, ... }` for variants that are not in `ALL` (kept
//! out of the lists because greta has no kernel for them); `parsed` is `true` when `FromStr` accepts
//! their name anyway; then optionally `later { Variant = "name", ... }`: listed variants added after the
//! unlisted ones, declared last so that no serde index moves (in `ALL` after the first list).

/// Declares a vocabulary enum with its name table; see the module doc.
macro_rules! named {
    (
        $(#[$meta:meta])*
        pub enum $T:ident ($what:literal, $plural:literal $(, $ci:ident)?) {
            $( $(#[$vdoc:meta])* $var:ident = $name:literal, )*
        }
        $( unlisted {
            $( $(#[$udoc:meta])* $uvar:ident = $uname:literal => $uparse:literal, )*
        } )?
        $( later {
            $( $(#[$ldoc:meta])* $lvar:ident = $lname:literal, )*
        } )?
    ) => {
        $(#[$meta])*
        pub enum $T {
            $( $(#[$vdoc])* $var, )*
            $($( $(#[$udoc])* $uvar, )*)?
            $($( $(#[$ldoc])* $lvar, )*)?
        }

        impl $T {
            #[doc = concat!("Every ", $what, " with a listed name, in declaration order (unlisted ones are not here).")]
            pub const ALL: &'static [$T] = &[ $( $T::$var, )* $($( $T::$lvar, )*)? ];

            #[doc = concat!("The ", $what, "'s name on the command line, in JSON and in docs.")]
            pub fn name(self) -> &'static str {
                match self {
                    $( $T::$var => $name, )*
                    $($( $T::$uvar => $uname, )*)?
                    $($( $T::$lvar => $lname, )*)?
                }
            }

            #[doc = concat!("The names of [`", stringify!($T), "::ALL`], in order.")]
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|x| x.name()).collect()
            }
        }

        impl std::fmt::Display for $T {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $T {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let key = $crate::launch::names::named!(@key s $(, $ci)?);
                $($(
                    if $uparse && key == $uname {
                        return Ok($T::$uvar);
                    }
                )*)?
                Self::ALL.iter().copied().find(|x| x.name() == key).ok_or_else(|| {
                    format!(
                        "unknown {} `{s}`: valid {} are {}",
                        $what,
                        $plural,
                        Self::names().join(", ")
                    )
                })
            }
        }
    };
    (@key $s:ident) => {
        std::borrow::Cow::<str>::Borrowed($s)
    };
    (@key $s:ident, ignore_case) => {
        std::borrow::Cow::<str>::Owned($s.to_ascii_lowercase())
    };
}

pub(crate) use named;

#[cfg(test)]
mod tests {
    use super::super::{DType, Precision, Stage, Variant};

    fn round_trips<T>(all: &[T])
    where
        T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + std::str::FromStr<Err = String>,
    {
        for &x in all {
            assert_eq!(x.to_string().parse::<T>().unwrap(), x);
        }
    }

    #[test]
    fn names_round_trip_and_errors_list_them() {
        round_trips(Stage::ALL);
        round_trips(Variant::ALL);
        round_trips(Precision::ALL);
        round_trips(DType::ALL);
        assert_eq!(Precision::names(), ["f64", "f32", "f16"]);
        assert_eq!(
            "f17".parse::<Precision>().unwrap_err(),
            "unknown precision `f17`: valid precisions are f64, f32, f16"
        );
        let e = "gemm".parse::<Variant>().unwrap_err();
        assert!(e.starts_with("unknown route variant `gemm`: valid variants are gemv, gemm_tiled"));
        assert!(!e.contains("engine"), "{e}");
        assert!("nope".parse::<Stage>().unwrap_err().contains("attn_norm"));
        assert!(
            "q7_k"
                .parse::<DType>()
                .unwrap_err()
                .contains("q4_k, q6_k, q5_0")
        );
    }

    #[test]
    fn unlisted_variants_keep_their_rules() {
        // Another engine's stage parses (`--stage other`); another engine's kernel does not.
        assert_eq!("other".parse::<Stage>().unwrap(), Stage::Other);
        assert!(!Stage::ALL.contains(&Stage::Other));
        assert_eq!(Variant::Engine.name(), "engine");
        assert!("engine".parse::<Variant>().is_err());
        // dtypes were always case-insensitive (`F32` from numpy-style names).
        assert_eq!("Q4_K".parse::<DType>().unwrap(), DType::Q4K);
        assert!("F32".parse::<Precision>().is_err());
    }
}
