//! A WIT package's signature: one line per thing a plugin can depend on (a type definition, a
//! function, a world's import or export), fully resolved, scoped by its interface or world,
//! without docs. A released version is kept in this form (`wit/released/<version>.sig`, by
//! `cargo xtask wit-freeze`), small enough to read in a diff and enough to tell whether a
//! later version still links the plugins built against it.
//!
//! `cargo xtask wit-freeze` writes it and `host/tests/contract.rs` checks `wit/` against it;
//! both include this one file, so they cannot disagree on the format.

use std::{collections::BTreeSet, fmt::Write as _, path::Path};

use wit_parser::{
    Function, Handle, InterfaceId, PackageId, Resolve, Type, TypeDefKind, TypeId, TypeOwner,
    WorldItem, WorldKey,
};

/// A package version's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `namespace:name`, without the version.
    pub package: String,
    /// The package's version.
    pub version: semver::Version,
    /// `interface log: func write(...)`, `world plugin: import interface log`...: sorted, so
    /// moving a definition (within its file or to another) changes nothing.
    pub items: BTreeSet<String>,
}

/// The interface nothing may change within a series (0.1.x): every other interface and every
/// plugin shares its types.
const FROZEN_INTERFACE: &str = "interface types";

impl Signature {
    /// The signature of the WIT package at `path`: a folder of `.wit` files (with `deps/`) or
    /// one file.
    pub fn of_wit(path: &Path) -> Result<Self, String> {
        let mut resolve = Resolve::default();
        let (package, _) = resolve
            .push_path(path)
            .map_err(|e| format!("parsing {}: {e:#}", path.display()))?;
        Renderer::new(&resolve, package).signature()
    }

    /// Reads a signature as [`Signature::render`] wrote it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'));
        let header = lines.next().unwrap_or_default();
        let Some((package, version)) = header
            .strip_prefix("package ")
            .and_then(|id| id.split_once('@'))
        else {
            return Err(format!(
                "the first line is not `package ns:name@version`: {header:?}"
            ));
        };
        let version = semver::Version::parse(version)
            .map_err(|e| format!("the version of {header:?}: {e}"))?;
        Ok(Signature {
            package: package.to_owned(),
            version,
            items: lines.map(str::to_owned).collect(),
        })
    }

    /// The text of a `.sig` file.
    pub fn render(&self) -> String {
        let mut text = format!(
            "# The signature of {}@{}, written by `cargo xtask wit-freeze`: a released version\n\
             # never changes (docs/contract.md).\n\
             package {}@{}\n",
            self.package, self.version, self.package, self.version
        );
        for item in &self.items {
            text.push_str(item);
            text.push('\n');
        }
        text
    }

    /// Whether a plugin built against `released` is meant to link against this version:
    /// wasmtime links a component against any semver-compatible version, as cargo does with
    /// crates, so only a version in the same series must keep what `released` had.
    pub fn is_series_of(&self, released: &Signature) -> bool {
        self.package == released.package
            && semver::VersionReq::parse(&format!("^{}", released.version))
                .is_ok_and(|series| series.matches(&self.version))
    }

    /// What this version breaks of `released`, one line each; empty when every plugin built
    /// against `released` still links. Only meaningful when [`Signature::is_series_of`].
    ///
    /// Anything `released` had must still be here, unchanged; `types` must be exactly what it
    /// was; and a world's exports too, and every interface a world exports, since a plugin
    /// built earlier cannot provide what was added to them.
    pub fn breaks(&self, released: &Signature) -> Vec<String> {
        let mut frozen: BTreeSet<String> = BTreeSet::from([FROZEN_INTERFACE.to_owned()]);
        for signature in [self, released] {
            for item in &signature.items {
                if let Some((scope, export)) = item.split_once(": export ") {
                    frozen.insert(format!("{scope}: export"));
                    if let Some(interface) = export.strip_prefix("interface ") {
                        frozen.insert(format!("interface {interface}"));
                    }
                }
            }
        }
        let is_frozen = |item: &str| {
            frozen.iter().any(|scope| {
                item == scope
                    || item
                        .strip_prefix(scope.as_str())
                        .is_some_and(|rest| rest.starts_with(':') || rest.starts_with(' '))
            })
        };
        let mut problems: Vec<String> = released
            .items
            .difference(&self.items)
            .map(|item| format!("lost or changed: {item}"))
            .collect();
        problems.extend(
            self.items
                .difference(&released.items)
                .filter(|item| is_frozen(item))
                .map(|item| format!("added where nothing may be: {item}")),
        );
        problems
    }
}

/// Renders the items of one package of a [`Resolve`].
struct Renderer<'a> {
    resolve: &'a Resolve,
    package: PackageId,
}

impl<'a> Renderer<'a> {
    fn new(resolve: &'a Resolve, package: PackageId) -> Self {
        Renderer { resolve, package }
    }

    fn signature(&self) -> Result<Signature, String> {
        let package = &self.resolve.packages[self.package];
        let Some(version) = package.name.version.clone() else {
            return Err(format!("{} has no version", package.name));
        };
        let mut items = BTreeSet::new();
        for (name, &id) in &package.interfaces {
            let scope = format!("interface {name}");
            let interface = &self.resolve.interfaces[id];
            let owner = TypeOwner::Interface(id);
            for &ty in interface.types.values() {
                items.insert(format!("{scope}: {}", self.definition(ty, owner)));
            }
            for function in interface.functions.values() {
                items.insert(format!("{scope}: {}", self.function(function, owner)));
            }
            // An interface with nothing in it is still something a world can import.
            items.insert(scope);
        }
        for (name, &id) in &package.worlds {
            let scope = format!("world {name}");
            let world = &self.resolve.worlds[id];
            let owner = TypeOwner::World(id);
            for (direction, entries) in [("import", &world.imports), ("export", &world.exports)] {
                for (key, item) in entries {
                    let item = self.world_item(key, item, owner)?;
                    items.insert(format!("{scope}: {direction} {item}"));
                }
            }
            items.insert(scope);
        }
        Ok(Signature {
            package: format!("{}:{}", package.name.namespace, package.name.name),
            version,
            items,
        })
    }

    fn world_item(
        &self,
        key: &WorldKey,
        item: &WorldItem,
        owner: TypeOwner,
    ) -> Result<String, String> {
        Ok(match (key, item) {
            (WorldKey::Interface(_), WorldItem::Interface { id, .. }) => {
                format!("interface {}", self.interface_name(*id))
            }
            // `import x: interface { ... }` has no interface of its own to list the contents
            // of: the contract never does it, and a signature that silently left them out
            // would let them change.
            (WorldKey::Name(name), WorldItem::Interface { .. }) => {
                return Err(format!(
                    "world item {name}: inline interfaces are not supported"
                ));
            }
            (_, WorldItem::Function(function)) => self.function(function, owner),
            (_, WorldItem::Type { id, .. }) => self.definition(*id, owner),
        })
    }

    /// `record name { field: type, ... }`, `type name = other.name`...
    fn definition(&self, id: TypeId, scope: TypeOwner) -> String {
        let ty = &self.resolve.types[id];
        let name = ty.name.as_deref().unwrap_or("_");
        let list = |names: Vec<String>| names.join(", ");
        match &ty.kind {
            TypeDefKind::Record(record) => format!(
                "record {name} {{ {} }}",
                list(
                    record
                        .fields
                        .iter()
                        .map(|field| format!("{}: {}", field.name, self.ty(&field.ty, scope)))
                        .collect()
                )
            ),
            TypeDefKind::Variant(variant) => format!(
                "variant {name} {{ {} }}",
                list(
                    variant
                        .cases
                        .iter()
                        .map(|case| match &case.ty {
                            Some(ty) => format!("{}({})", case.name, self.ty(ty, scope)),
                            None => case.name.clone(),
                        })
                        .collect()
                )
            ),
            TypeDefKind::Enum(enumeration) => format!(
                "enum {name} {{ {} }}",
                list(
                    enumeration
                        .cases
                        .iter()
                        .map(|case| case.name.clone())
                        .collect()
                )
            ),
            TypeDefKind::Flags(flags) => format!(
                "flags {name} {{ {} }}",
                list(flags.flags.iter().map(|flag| flag.name.clone()).collect())
            ),
            TypeDefKind::Resource => format!("resource {name}"),
            _ => format!("type {name} = {}", self.structure(id, scope)),
        }
    }

    /// `func name(param: type, ...) -> type`; a resource's methods keep wit-parser's names
    /// (`[method]ticket.name`), which say whose they are.
    fn function(&self, function: &Function, scope: TypeOwner) -> String {
        let mut text = String::new();
        if function.kind.is_async() {
            text.push_str("async ");
        }
        let params: Vec<String> = function
            .params
            .iter()
            .map(|param| format!("{}: {}", param.name, self.ty(&param.ty, scope)))
            .collect();
        let _ = write!(text, "func {}({})", function.name, params.join(", "));
        if let Some(result) = &function.result {
            let _ = write!(text, " -> {}", self.ty(result, scope));
        }
        text
    }

    /// A use of a type: its name when it has one (qualified by its interface or world when
    /// that is not `scope`), else its structure.
    fn ty(&self, ty: &Type, scope: TypeOwner) -> String {
        let primitive = match ty {
            Type::Bool => "bool",
            Type::U8 => "u8",
            Type::U16 => "u16",
            Type::U32 => "u32",
            Type::U64 => "u64",
            Type::S8 => "s8",
            Type::S16 => "s16",
            Type::S32 => "s32",
            Type::S64 => "s64",
            Type::F32 => "f32",
            Type::F64 => "f64",
            Type::Char => "char",
            Type::String => "string",
            Type::ErrorContext => "error-context",
            Type::Id(id) => return self.named(*id, scope),
        };
        primitive.to_owned()
    }

    fn named(&self, id: TypeId, scope: TypeOwner) -> String {
        let ty = &self.resolve.types[id];
        let Some(name) = &ty.name else {
            return self.structure(id, scope);
        };
        match ty.owner {
            owner if owner == scope => name.clone(),
            TypeOwner::Interface(interface) => format!("{}.{name}", self.interface_name(interface)),
            TypeOwner::World(world) => format!("{}.{name}", self.resolve.worlds[world].name),
            TypeOwner::None => name.clone(),
        }
    }

    /// What a type is made of, whatever its name: `list<u8>`, `result<_, config-error>`...
    fn structure(&self, id: TypeId, scope: TypeOwner) -> String {
        let ty = |ty: &Type| self.ty(ty, scope);
        // As WIT writes them: `result`, `result<T>`, `result<_, E>`, `future`, `future<T>`.
        let generic = |name: &str, types: [Option<&Type>; 2]| match types {
            [None, None] => name.to_owned(),
            [Some(first), None] => format!("{name}<{}>", ty(first)),
            [first, Some(second)] => {
                let first = first.map_or("_".to_owned(), ty);
                format!("{name}<{first}, {}>", ty(second))
            }
        };
        match &self.resolve.types[id].kind {
            TypeDefKind::Type(inner) => ty(inner),
            TypeDefKind::List(item) => format!("list<{}>", ty(item)),
            TypeDefKind::FixedLengthList(item, size) => format!("list<{}, {size}>", ty(item)),
            TypeDefKind::Map(key, value) => format!("map<{}, {}>", ty(key), ty(value)),
            TypeDefKind::Option(item) => format!("option<{}>", ty(item)),
            TypeDefKind::Result(result) => {
                generic("result", [result.ok.as_ref(), result.err.as_ref()])
            }
            TypeDefKind::Tuple(tuple) => format!(
                "tuple<{}>",
                tuple.types.iter().map(ty).collect::<Vec<_>>().join(", ")
            ),
            TypeDefKind::Handle(Handle::Own(resource)) => {
                format!("own<{}>", self.named(*resource, scope))
            }
            TypeDefKind::Handle(Handle::Borrow(resource)) => {
                format!("borrow<{}>", self.named(*resource, scope))
            }
            TypeDefKind::Future(item) => generic("future", [item.as_ref(), None]),
            TypeDefKind::Stream(item) => generic("stream", [item.as_ref(), None]),
            // Named kinds: only reached for a definition without a name, which WIT has none of.
            kind @ (TypeDefKind::Record(_)
            | TypeDefKind::Variant(_)
            | TypeDefKind::Enum(_)
            | TypeDefKind::Flags(_)
            | TypeDefKind::Resource
            | TypeDefKind::Unknown) => kind.as_str().to_owned(),
        }
    }

    /// An interface's name, with its package when it is another package's.
    fn interface_name(&self, id: InterfaceId) -> String {
        let interface = &self.resolve.interfaces[id];
        let name = interface.name.as_deref().unwrap_or("_");
        match interface.package {
            Some(package) if package != self.package => {
                let package = &self.resolve.packages[package].name;
                format!("{}:{}/{name}", package.namespace, package.name)
            }
            _ => name.to_owned(),
        }
    }
}
